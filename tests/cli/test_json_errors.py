"""With `--format json`, stdout is one JSON document whatever goes wrong: a script piping
`mcp-guard validate ... --format json` into a JSON parser got nothing at all on stdout
when the error was a bad option or a missing argument (click printed its usage text on
stderr), and crashed parsing it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from guard.cli import main

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "policies"
WEATHER = str(EXAMPLES / "weather.yaml")


@pytest.mark.parametrize(
    "args,field",
    [
        (["validate", "--format", "json"], "PATH..."),  # missing argument
        (["info", WEATHER, "--format=json", "--bogus"], None),  # unknown option
        (["explain", WEATHER, "--format", "json", "--tool"], "--tool"),  # option without value
        (["explain", WEATHER, "--format", "json"], None),  # no --tool / --resource / --prompt
        (["explain", WEATHER, "--tool", "t", "--arg", "x", "--format", "json"], None),
        (
            ["test", "--import", "no_such_module_here", str(EXAMPLES), "--format", "json"],
            "--import",
        ),
        (["test", "{empty}", "--format", "json"], None),  # no suite files
    ],
)
def test_errors_are_json_with_format_json(
    args: list[str], field: str | None, tmp_path: Path
) -> None:
    result = CliRunner().invoke(main, [a.replace("{empty}", str(tmp_path)) for a in args])
    assert result.exit_code == 1, result.output
    data = json.loads(result.stdout)
    assert data["valid"] is False
    [problem] = data["problems"]
    assert problem["message"] and problem["source"] == "<command line>"
    if field is not None:
        assert problem["field"] == field
    assert result.stderr == ""


def test_usage_errors_stay_text_without_format_json() -> None:
    result = CliRunner().invoke(main, ["validate"])
    assert result.exit_code == 1
    assert result.stdout == "" and "Missing argument" in result.stderr
    # an invalid --format is no request for JSON
    result = CliRunner().invoke(main, ["validate", WEATHER, "--format", "xml"])
    assert result.exit_code == 1
    assert result.stdout == "" and "'xml' is not one of" in result.stderr


@pytest.mark.parametrize(
    "args",
    [
        ["explain", WEATHER, "--format", "json"],  # no --tool / --resource / --prompt
        ["explain", WEATHER, "--tool", "t", "--resource", "r://x", "--format", "json"],
        ["explain", WEATHER, "--tool", "t", "--arg", "x", "--format", "json"],
        ["explain", WEATHER, "--tool", "t", "--claim", "=1", "--format", "json"],
        ["explain", WEATHER, "--tool", "t", "--anonymous", "--user", "u", "--format", "json"],
        ["explain", WEATHER, "--request", WEATHER, "--tool", "t", "--format", "json"],
        ["info", WEATHER, "--format=json", "--bogus"],
    ],
)
def test_bad_options_have_code_usage(args: list[str]) -> None:
    """The README: each problem has a `code`, "`usage` for a bad option or argument".
    `explain`'s own checks of its options said `error`, so a script branching on the code
    took a mistyped `--arg` for a failure of the policies."""
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 1, result.output
    [problem] = json.loads(result.stdout)["problems"]
    assert problem["code"] == "usage", problem
