"""DuckDB queries the guard runs never print to stdout. Found in review: DuckDB's progress
bar is on by default and drawn on stdout, even when stdout is a pipe, for any query that
runs longer than `progress_bar_time` (2 s). In a stdio MCP server stdout is the protocol
channel: a slow read of the store there (checking spilled rows against it, a roll-up, a
tool that queries records) wrote the bar's frames between JSON-RPC messages. The CLI's
output (`mcp-guard tail`, piped into `jq`) got them too.

The test asks for the bar after 50 ms, which also enables it, so a short query would draw
it if the guard's connections let it print."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from guard.audit import AuditLog

_SLOW = "SELECT count(*) FROM range(400000000) t(i) WHERE i % 7 = 3"

_SCRIPT = f"""
import sys
from guard.audit import open_store

store = open_store(sys.argv[1])
store.execute("SET progress_bar_time = 50").fetchall()
print(store.sql({_SLOW!r}).fetchall(), file=sys.stderr)
store.close()
"""


def test_a_slow_store_query_prints_nothing_on_stdout(tmp_path: Path) -> None:
    AuditLog(tmp_path / "store").close()
    done = subprocess.run(
        [sys.executable, "-c", _SCRIPT, str(tmp_path / "store")],
        capture_output=True,
        timeout=120,
        check=True,
    )
    assert b"[(" in done.stderr  # the query ran
    assert done.stdout == b""


def test_every_connection_of_the_guard_is_one_that_never_prints() -> None:
    # the writer's converter, verify, compact and retention connect through it too
    package = Path(__file__).resolve().parents[2] / "guard"
    raw = [
        f"{path.relative_to(package)}:{n}"
        for path in package.rglob("*.py")
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if "duckdb.connect(" in line and path.name != "segments.py"
    ]
    assert raw == []
