"""`convert --to json` (and `format` of a JSON file) writes JSON that loads back as the
same policies, whatever characters its strings hold."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from guard.cli import main
from guard.policy.loader import parse_policies
from guard.policy.spec import content_of

# YAML escapes of characters JSON writes raw: DEL and C1 controls (which YAML refuses to
# read raw), NEL (which YAML folds into a space inside quotes), line and paragraph
# separators, a byte order mark
POLICY = r"""name: odd
description: "bell\x7f and csi\x9b"
rules:
  - name: deny_marked
    effect: deny
    tools: {names: [t]}
    conditions:
      - {field: tool.args.s, operator: in, value: ["a\x85b", "c\u2028d", "e\u2029f", "g\ufeffh"]}
  - name: allow_t
    effect: allow
    tools: {names: [t]}
"""


def test_json_output_loads_back_to_the_same_policy(tmp_path: Path) -> None:
    """JSON leaves DEL and the C1 controls raw, which YAML (the reader of every policy
    file, JSON included) refuses: the converted file did not load at all. A raw NEL it
    read, folded into a space, so a deny rule on `a<NEL>b` no longer matched it."""
    source = tmp_path / "odd.yaml"
    source.write_text(POLICY, encoding="utf-8")
    target = tmp_path / "odd.json"
    runner = CliRunner()
    result = runner.invoke(main, ["convert", str(source), "--to", "json", "-o", str(target)])
    assert result.exit_code == 0, result.output
    (original,) = parse_policies(source)
    (converted,) = parse_policies(target)
    assert content_of(converted) == content_of(original)
    formatted = runner.invoke(main, ["format", str(target), "--check"])
    assert formatted.exit_code == 0, formatted.output
    back = runner.invoke(main, ["convert", str(target), "--to", "yaml"])
    assert back.exit_code == 0, back.output
    (again,) = parse_policies(back.output)
    assert content_of(again) == content_of(original)


def test_values_json_cannot_write_are_refused_not_changed(tmp_path: Path) -> None:
    """`.inf` left as JSON's `Infinity`, which YAML reads back as the text "Infinity": an
    allow rule `equals .inf` then admitted the argument "Infinity" it had refused. A date
    crashed the command with a TypeError traceback. Neither has a JSON form: refused."""
    runner = CliRunner()
    for value in (".inf", "-.inf", ".nan", "2025-01-01", "2025-01-01 10:00:00+02:00"):
        source = tmp_path / "v.yaml"
        source.write_text(
            "name: v\nrules:\n  - name: r\n    effect: allow\n    conditions:\n"
            f"      - {{field: tool.args.a, operator: equals, value: {value}}}\n"
        )
        target = tmp_path / "v.json"
        result = runner.invoke(main, ["convert", str(source), "--to", "json", "-o", str(target)])
        assert result.exit_code == 1, (value, result.output)
        assert result.exception is None or isinstance(result.exception, SystemExit), value
        assert "rules[0].conditions[0].value is" in result.output and "JSON" in result.output
        assert not target.exists()
        target.write_text(source.read_text())  # YAML in a .json file: `format` writes JSON
        formatted = runner.invoke(main, ["format", str(target)])
        assert formatted.exit_code == 1, (value, formatted.output)
        assert f"{target}:" in formatted.output
        target.unlink()
