"""Suites and request files that would exhaust the process are reported, not crashed on."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from guard.cli import main

POLICY = "name: p\nrules:\n  - {name: r, effect: allow, tools: {names: [t]}}\n"


def _nested(depth: int) -> str:
    return "[" * depth + "]" * depth


def test_deeply_nested_suite_and_request_are_reported(tmp_path: Path) -> None:
    """PyYAML's Python composer recurses once per level: a few hundred levels of `[[[`
    raised RecursionError through `mcp-guard test` (ending the whole run, other suites
    unreported) and `mcp-guard explain --request`, with a traceback."""
    (tmp_path / "p.yaml").write_text(POLICY)
    deep = tmp_path / "deep.test.yaml"
    deep.write_text(
        "policies: p.yaml\ncases:\n  - name: deep\n    principal: u\n    tool: t\n"
        f"    args: {{a: {_nested(5000)}}}\n    expect: allow\n"
    )
    good = tmp_path / "good.test.yaml"
    good.write_text(
        "policies: p.yaml\ncases:\n  - {name: ok, principal: u, tool: t, expect: allow}\n"
    )
    runner = CliRunner()
    result = runner.invoke(main, ["test", str(tmp_path)])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    assert result.exit_code == 1
    assert f"ERROR {deep}" in result.output and "nested too deeply" in result.output
    assert "1 passed, 0 failed, 1 broken in 2 suites" in result.output
    request = tmp_path / "request.yaml"
    request.write_text(f"principal: u\ntool: t\nargs: {{a: {_nested(5000)}}}\n")
    explained = runner.invoke(
        main, ["explain", str(tmp_path / "p.yaml"), "--request", str(request)]
    )
    assert isinstance(explained.exception, SystemExit), explained.output
    assert explained.exit_code == 1
    assert "nested too deeply" in explained.output


@pytest.mark.timeout(30)
def test_alias_bomb_in_an_inline_policy_is_refused(tmp_path: Path) -> None:
    """The policy loader bounds what YAML aliases expand to, but an inline policy reached
    it as a dict, which validation copies in full: a 1 kB suite whose condition value
    expands to 10**9 strings ran for minutes and exhausted memory."""
    levels = ['  a0: &a0 ["x","x","x","x","x","x","x","x","x","x"]']
    for i in range(1, 9):
        levels.append(f"  a{i}: &a{i} [{','.join([f'*a{i - 1}'] * 10)}]")
    suite = tmp_path / "bomb.test.yaml"
    suite.write_text(
        "cases:\n  - name: c\n    principal: u\n    tool: t\n    expect: allow\n    args:\n"
        + "\n".join("    " + line for line in levels)
        + "\npolicies:\n  name: p\n  rules:\n    - name: r\n      effect: allow\n"
        "      conditions: [{field: tool.args.a, operator: in, value: *a8}]\n"
    )
    result = CliRunner().invoke(main, ["test", str(suite)])
    assert result.exit_code == 1, result.output
    assert f"ERROR {suite}:" in result.output and "alias" in result.output


@pytest.mark.timeout(30)
def test_alias_bomb_in_a_request_file_is_read_in_its_written_size(tmp_path: Path) -> None:
    """`explain --request` looked for keys written twice by walking every value, aliases
    expanded: a 1 kB request whose arguments alias 10**8 strings ran for minutes before
    deciding (which reads no more of an argument than its limits allow)."""
    (tmp_path / "p.yaml").write_text(POLICY)
    levels = ['  a0: &a0 ["x","x","x","x","x","x","x","x","x","x"]']
    for i in range(1, 9):
        levels.append(f"  a{i}: &a{i} [{','.join([f'*a{i - 1}'] * 10)}]")
    request = tmp_path / "request.yaml"
    request.write_text("principal: u\ntool: t\nargs:\n" + "\n".join(levels) + "\n")
    result = CliRunner().invoke(
        main, ["explain", str(tmp_path / "p.yaml"), "--request", str(request)]
    )
    assert result.exit_code == 0, result.output
    assert result.output.startswith("ALLOWED by rule p/r")
