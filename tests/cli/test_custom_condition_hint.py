"""A policy naming a custom condition the command line has not imported."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from guard.cli import main


def test_unknown_custom_condition_points_at_import(tmp_path: Path) -> None:
    """`mcp-guard validate` said only "unknown custom condition 'quarter_end_freeze' (known:
    none registered)": nothing told the author the condition is registered in Python and
    that the command takes `--import` for it. (A name no test registers: the registry is
    the process's.)"""
    office = tmp_path / "office.yaml"
    office.write_text(
        "name: office\nrules:\n  - name: r\n    effect: allow\n"
        "    conditions: [{custom: quarter_end_freeze}]\n"
    )
    result = CliRunner().invoke(main, ["validate", str(office)])
    assert result.exit_code == 1
    assert "unknown custom condition 'quarter_end_freeze'" in result.output
    assert "--import" in result.output
