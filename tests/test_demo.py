"""The README's first command runs the demo; the demo must keep working end to end."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
# Settings examples/ops_server.py reads, as an operator who followed its docstring has
# them exported in the shell: found in review, the demo inherited them, its readiness probe
# got 401 from /metrics and it gave up ("server did not become ready"), and its callers'
# keys were no longer the server's.
OPERATOR_SHELL = {"METRICS_TOKEN": "scrape-secret", "USER_API_KEY": "k1", "ADMIN_API_KEY": "k2"}


@pytest.mark.parametrize("shell", [{}, OPERATOR_SHELL], ids=["clean", "operator-shell"])
def test_demo_runs_and_leaves_verified_records(tmp_path: Path, shell: dict[str, str]) -> None:
    out = tmp_path / "demo-out"
    done = subprocess.run(
        [sys.executable, str(REPO / "examples" / "demo.py"), "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=180,
        cwd=REPO,
        env={**os.environ, **shell},
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    text = done.stdout
    # the user sees the weather, the admin may delete, the others are refused
    assert "ursula (user)          tools/call get_weather   allowed" in text
    assert "ursula (user)          tools/call delete_city   denied" in text
    assert "ada (admin)            tools/call delete_city   allowed" in text
    assert "invalid_api_key" in text and "missing_credentials" in text
    assert "mcpguard_decisions_total{" in text
    assert ", intact" in text
    # the wrong key never reaches the records
    store_bytes = b"".join(p.read_bytes() for p in out.rglob("*") if p.is_file())
    assert b"not-a-key" not in store_bytes
