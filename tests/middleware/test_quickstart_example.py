"""examples/quickstart works as its docstrings say: server over HTTP, client, records."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from servers import REPO, running_server

from guard.audit import open_store

EXAMPLE = REPO / "examples" / "quickstart"


def test_quickstart_server_and_client(tmp_path: Path) -> None:
    with running_server(EXAMPLE / "server.py", cwd=tmp_path) as srv:
        done = subprocess.run(
            [sys.executable, str(EXAMPLE / "client.py"), srv.url],
            capture_output=True,
            text=True,
            timeout=120,
            check=True,
        )
    out = done.stdout
    assert "[user-key-123] sees tools ['add', 'divide']" in out
    assert "[user-key-123] add(2, 3) = 5.0" in out
    assert "[user-key-123] divide refused: Unknown tool: 'divide'" in out
    assert "[user-key-123] reset_counters refused" in out
    assert "[admin-key-456] reset_counters -> counters reset" in out
    with open_store(tmp_path / "quickstart-audit") as db:
        rows = db.sql(
            "SELECT user_id, resource, allowed, rule FROM decisions"
            " WHERE method = 'tools/call' ORDER BY ts"
        ).fetchall()
    assert ("alice", "divide", False, "users_divide_small_numbers") in rows
    assert ("root", "reset_counters", True, "admins_do_everything") in rows
