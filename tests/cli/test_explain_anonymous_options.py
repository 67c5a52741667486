"""`mcp-guard explain --anonymous` refuses the principal options it would ignore."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from guard.cli import main

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "policies"


def test_anonymous_with_principal_options_is_refused() -> None:
    """`--anonymous --user admin --role admin` silently drops the user and roles and
    answers for an unauthenticated caller; conflicting options must be an error, as
    `--request` with options is."""
    result = CliRunner().invoke(
        main, ["explain", str(EXAMPLES), "--anonymous", "--user", "root", "--role", "admin",
               "--tool", "get_weather"],
    )  # fmt: skip
    assert result.exit_code == 1, result.output
