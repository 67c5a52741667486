"""A suite or request file is read no further than a policy file's size limit. Found in
review: `mcp-guard test /dev/zero` (or `explain --request /dev/zero`) read until memory
ran out, and a 6 MB suite was parsed whole, where a policy file that size is refused."""

from __future__ import annotations

import resource
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from guard.cli import main
from guard.policy.loader import MAX_POLICY_BYTES

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "policies"


def run(*args: object) -> Result:
    return CliRunner().invoke(main, [str(a) for a in args])


def oversized(path: Path) -> Path:
    path.write_text("# padding\n" * (MAX_POLICY_BYTES // 10 + 1))
    return path


def test_an_oversized_suite_is_refused_unparsed(tmp_path: Path) -> None:
    result = run("test", oversized(tmp_path / "big.test.yaml"))
    assert result.exit_code == 1
    assert "too large" in result.output or "over the limit" in result.output
    assert f"{MAX_POLICY_BYTES:,}" in result.output


def test_an_oversized_request_is_refused_unparsed(tmp_path: Path) -> None:
    result = run("explain", EXAMPLES, "--request", oversized(tmp_path / "r.yaml"))
    assert result.exit_code == 1
    assert f"{MAX_POLICY_BYTES:,}" in result.output


def _limited() -> None:
    limit = 1 << 30  # memory: /dev/zero read whole would pass it in a second
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))


@pytest.mark.parametrize(
    "args", [["test", "/dev/zero"], ["explain", str(EXAMPLES), "--request", "/dev/zero"]]
)
def test_an_endless_input_stops_at_the_limit(args: list[str]) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "guard.cli", *args],
        capture_output=True, text=True, timeout=60, preexec_fn=_limited, check=False,
    )  # fmt: skip
    assert proc.returncode == 1, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    assert f"{MAX_POLICY_BYTES:,}" in proc.stdout + proc.stderr
