"""Review findings: bad input files give tracebacks instead of `file: problem` lines."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from click.testing import CliRunner, Result

from guard.cli import main

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "policies"


def run(*args: object) -> Result:
    return CliRunner().invoke(main, [str(a) for a in args])


def no_traceback(result: Result) -> None:
    assert result.exception is None or isinstance(result.exception, SystemExit), (
        f"traceback: {result.exception!r}"
    )


def test_explain_request_not_utf8(tmp_path: Path) -> None:
    request = tmp_path / "r.yaml"
    request.write_bytes(b'tool: t\nargs: {a: "\xff"}\n')
    result = run("explain", EXAMPLES, "--request", request)
    no_traceback(result)
    assert result.exit_code == 1 and "UTF-8" in result.output


def test_suite_not_utf8(tmp_path: Path) -> None:
    suite = tmp_path / "x.test.yaml"
    suite.write_bytes(
        f"policies: {EXAMPLES / 'weather.yaml'}\ncases:\n".encode()
        + b'  - {name: "\xff", tool: t, expect: deny}\n'
    )
    result = run("test", suite)
    no_traceback(result)
    assert result.exit_code == 1 and "UTF-8" in result.output


def test_explain_request_errors_honour_format_json(tmp_path: Path) -> None:
    """`--format json` is "for machines"; a request file that does not parse prints text
    on stderr and nothing on stdout (a malformed request mapping prints JSON)."""
    request = tmp_path / "r.json"
    request.write_text('{"tool": "t", "args": ')
    result = run("explain", EXAMPLES, "--request", request, "--format", "json")
    assert result.exit_code == 1
    assert json.loads(result.stdout)["valid"] is False


def test_explain_request_refuses_a_key_written_twice(tmp_path: Path) -> None:
    """A request "in the form of a test case": a suite refuses a key written twice,
    `explain --request` silently keeps the last one and decides something else."""
    request = tmp_path / "r.yaml"
    request.write_text(
        "principal: {user_id: a, roles: [user]}\ntool: get_weather\ntool: delete_city\n"
    )
    result = run("explain", EXAMPLES, "--request", request)
    assert result.exit_code == 1 and "duplicate key" in result.output


def test_convert_output_in_missing_directory(tmp_path: Path) -> None:
    result = run(
        "convert", EXAMPLES / "weather.yaml", "--to", "json", "-o", tmp_path / "no" / "w.json"
    )
    no_traceback(result)
    assert result.exit_code == 1


def test_junit_xml_in_missing_directory(tmp_path: Path) -> None:
    shutil.copytree(EXAMPLES, tmp_path / "ex")
    result = run("test", tmp_path / "ex", "--junit-xml", tmp_path / "no" / "r.xml")
    no_traceback(result)
    assert result.exit_code == 1
