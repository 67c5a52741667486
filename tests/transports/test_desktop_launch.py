"""A stdio server as desktop MCP clients launch it: environment only, and a working
directory the client chooses (often `/` or the user's home, possibly not writable).

Found in review: where that directory could not hold the default store
`./mcp-guard-audit.duckdb`, the server started anyway and every call ran while its record
waited in memory, retried and warned about on each flush, and was lost at exit: a whole
session unaudited, with nothing the client shows. The guard now refuses to start there,
saying on stderr to set `MCP_GUARD_AUDIT`; set, the same launch records every call.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from mcp import ClientSession
from mcp.client.stdio import StdioServerParameters, stdio_client
from servers import stdio_command

from guard import GuardMiddleware
from guard.audit import open_store
from guard.errors import AuditError

SCRIPT = Path(__file__).with_name("desktop_server.py")
POLICY = Path(__file__).with_name("policy.yaml")
UNWRITABLE = "/proc"  # not even root creates a directory there


def test_the_default_store_where_it_cannot_be_made_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("MCP_GUARD_AUDIT", raising=False)
    monkeypatch.chdir(UNWRITABLE)
    with pytest.raises(AuditError, match="MCP_GUARD_AUDIT") as refused:
        GuardMiddleware(str(POLICY), telemetry=False)
    assert "/proc/mcp-guard-audit.duckdb" in str(refused.value)


def test_a_launch_in_an_unwritable_directory_exits_saying_why() -> None:
    command, args, env = stdio_command(SCRIPT, env={"MCP_GUARD_USER": "dev"})
    env.pop("MCP_GUARD_AUDIT", None)
    done = subprocess.run(
        [command, *args], cwd=UNWRITABLE, env=env, input=b"", capture_output=True, timeout=60
    )
    assert done.returncode != 0
    assert b"MCP_GUARD_AUDIT" in done.stderr
    assert done.stdout == b""  # the protocol channel carries nothing but the protocol


async def test_with_mcp_guard_audit_the_same_launch_records_every_call(tmp_path: Path) -> None:
    store = tmp_path / "records.duckdb"
    command, args, env = stdio_command(
        SCRIPT,
        env={"MCP_GUARD_USER": "dev", "MCP_GUARD_ROLES": "user", "MCP_GUARD_AUDIT": str(store)},
    )
    params = StdioServerParameters(command=command, args=args, env=env, cwd=UNWRITABLE)
    with (tmp_path / "stderr").open("w") as errlog:
        async with (
            stdio_client(params, errlog=errlog) as (read, write),
            ClientSession(read, write) as session,
        ):
            await session.initialize()
            for n in range(3):
                result = await session.call_tool("echo", {"text": str(n)})
                assert not result.is_error
    # the client closed stdin: the server flushed as it ended
    with open_store(store) as records:
        rows = records.sql(
            "SELECT user_id, roles, auth_method, transport FROM decisions"
            " WHERE method = 'tools/call'"
        ).fetchall()
    assert rows == [("dev", ["user"], "stdio", "stdio")] * 3
