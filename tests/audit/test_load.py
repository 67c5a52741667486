"""1,000 concurrent HTTP sessions x 100 tool calls against a real guarded server: exactly
100,000 decision records and matching outcomes, while another process reads the whole time."""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import pytest
from audit_kit import PYTHON, RAW_API_KEY, subprocess_env
from servers import running_server
from test_guarded_server import HERE, server_env

from guard.audit import open_store, verify

SESSIONS, CALLS, CLIENT_PROCESSES = 1000, 100, 2


@pytest.mark.slow
@pytest.mark.skipif(
    os.environ.get("MCP_GUARD_LOAD_TEST") != "1",
    reason="100,000 calls take minutes of both cores: set MCP_GUARD_LOAD_TEST=1 "
    "(scripts/test.sh does, so CI runs it)",
)
@pytest.mark.timeout(1500)
def test_100k_calls_leave_exactly_100k_records(tmp_path: Path) -> None:
    store, stop = tmp_path / "store", tmp_path / "stop-reader"
    env = server_env(store, AUDIT_JSON="1")
    with running_server(HERE / "audit_server.py", env=env) as srv:
        reader = subprocess.Popen(
            [PYTHON, str(HERE / "reader_proc.py"), str(store), str(stop)],
            env=subprocess_env(), stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        started = time.monotonic()
        per = SESSIONS // CLIENT_PROCESSES
        clients = [
            subprocess.Popen(
                [PYTHON, str(HERE / "load_client.py"), srv.url, RAW_API_KEY, str(per), str(CALLS)],
                env=subprocess_env(),
                stdout=subprocess.PIPE,
                text=True,
            )
            for _ in range(CLIENT_PROCESSES)
        ]
        results = [json.loads(c.communicate(timeout=1400)[0]) for c in clients]
        elapsed = time.monotonic() - started
        print(f"{SESSIONS * CALLS} calls in {elapsed:.1f}s ({SESSIONS * CALLS / elapsed:.0f}/s)")
        assert [r["errors"] for r in results] == [[]] * CLIENT_PROCESSES
        assert sum(r["ok"] for r in results) == SESSIONS * CALLS
    # the server has exited (SIGTERM): its log flushed everything on the way out
    stop.touch()
    seen = json.loads(reader.communicate(timeout=60)[0])
    assert seen["errors"] == [] and not seen["backwards"] and seen["queries"] > 10
    with open_store(store) as con:
        counts = con.execute(
            "SELECT count(*), count(DISTINCT decision_id), count(status), "
            "count(*) FILTER (WHERE status = 'ok') FROM decision_log WHERE method = 'tools/call'"
        ).fetchone()
        sessions = con.execute(
            "SELECT count(DISTINCT session_id) FROM decisions WHERE method = 'tools/call'"
        ).fetchone()
    assert counts == (SESSIONS * CALLS,) * 4
    assert sessions == (SESSIONS,)
    assert verify(store).ok
