"""A dangling symlink named like a suite or a policy is a file that cannot be read, as
`load_policies` treats it, not something to skip: `mcp-guard test` silently left such a
suite out and passed, so CI stayed green without running it."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from click.testing import CliRunner

from guard.cli import main

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "policies"


def test_a_dangling_suite_in_a_directory_is_broken(tmp_path: Path) -> None:
    suites = tmp_path / "tests"
    suites.mkdir()
    shutil.copy(EXAMPLES / "tests" / "weather.test.yaml", suites)
    (suites / "weather.test.yaml").write_text(
        (suites / "weather.test.yaml")
        .read_text()
        .replace("../weather.yaml", str(EXAMPLES / "weather.yaml"))
    )
    (suites / "gone.test.yaml").symlink_to(tmp_path / "moved.test.yaml")
    result = CliRunner().invoke(main, ["test", str(suites), "--format", "json"])
    assert result.exit_code == 1, result.output
    data = json.loads(result.stdout)
    assert data["errors"] == 1 and data["failed"] == 0
    assert [s["suite"] for s in data["suites"] if "problems" in s] == [
        str(suites / "gone.test.yaml")
    ]


def test_format_check_names_a_dangling_policy(tmp_path: Path) -> None:
    (tmp_path / "gone.yaml").symlink_to(tmp_path / "moved.yaml")
    result = CliRunner().invoke(main, ["format", str(tmp_path), "--check"])
    assert result.exit_code == 1
    assert "gone.yaml" in result.stderr


def test_a_pipe_in_a_directory_is_refused_not_waited_on(tmp_path: Path) -> None:
    # with special files no longer skipped, reading a FIFO found in a directory would
    # block the run until something wrote to it (found in review)
    import os
    import subprocess
    import sys

    os.mkfifo(tmp_path / "stuck.test.yaml")
    os.mkfifo(tmp_path / "stuck.yaml")
    for args in (["test", str(tmp_path)], ["format", str(tmp_path), "--check"]):
        done = subprocess.run(
            [sys.executable, "-m", "guard.cli", *args],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert done.returncode == 1, (args, done.stderr)
        assert "not a regular file" in done.stderr


def test_format_check_of_an_empty_directory_fails(tmp_path: Path) -> None:
    # found in review: "0 of 0 files would be reformatted", exit 0, checking nothing
    result = CliRunner().invoke(main, ["format", str(tmp_path), "--check"])
    assert result.exit_code == 1
    assert "no policy files" in result.stderr
