"""Review findings: `mcp-guard format`."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from guard.cli import main
from guard.policy.loader import parse_policies

POLICY = """\
name: c
default_effect: deny
rules:
  - name: r   #owned by team X, ask before changing
    effect: allow
"""


def test_write_refuses_inline_comment_without_space_after_hash(tmp_path: Path) -> None:
    """README: `--write rewrites (drops comments: needs --force)`. A `#note` comment (no
    space after `#`) is a YAML comment too, but `format --write` drops it without --force."""
    path = tmp_path / "c.yaml"
    path.write_text(POLICY)
    result = CliRunner().invoke(main, ["format", str(path), "--write"])
    assert result.exit_code == 1, result.output
    assert "#owned by team X" in path.read_text()


def test_printing_several_files_gives_loadable_yaml(tmp_path: Path) -> None:
    """`format a.yaml b.yaml` prints the canonical form of each; concatenated without
    `---` the output is one mapping with every key twice, not two policies."""
    (tmp_path / "a.yaml").write_text("name: a\nrules: []\n")
    (tmp_path / "b.yaml").write_text("name: b\nrules: []\n")
    result = CliRunner().invoke(
        main, ["format", str(tmp_path / "a.yaml"), str(tmp_path / "b.yaml")]
    )
    assert result.exit_code == 0
    out = tmp_path / "out.yaml"
    out.write_text(result.stdout)
    assert [s.name for s in parse_policies(out)] == ["a", "b"]


def test_printing_keeps_the_order_of_the_files(tmp_path: Path) -> None:
    """Files already canonical are printed after the others, whatever order was given."""
    (tmp_path / "a.yaml").write_text("name: a\nversion: '1.0'\ndefault_effect: deny\nrules: []\n")
    (tmp_path / "b.yaml").write_text("name: b\nrules: []\n")  # not canonical
    result = CliRunner().invoke(
        main, ["format", str(tmp_path / "a.yaml"), str(tmp_path / "b.yaml")]
    )
    assert result.stdout.index("name: a") < result.stdout.index("name: b")


def test_directory_is_the_set_load_policies_reads(tmp_path: Path) -> None:
    """A directory loads every *.yaml except dotfiles (README); `format DIR --check` also
    reads dotfiles, so an editor backup that is no part of the policy set fails the check."""
    (tmp_path / "a.yaml").write_text("name: a\nversion: '1.0'\ndefault_effect: deny\nrules: []\n")
    (tmp_path / ".draft.yaml").write_text("name: d\nrules:\n  - {name: r, effect: maybe}\n")
    assert CliRunner().invoke(main, ["validate", str(tmp_path)]).exit_code == 0
    result = CliRunner().invoke(main, ["format", str(tmp_path), "--check"])
    assert result.exit_code == 0, result.output
