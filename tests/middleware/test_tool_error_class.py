"""A tool's outcome names the class of the exception the tool raised. Found in review:
FastMCP wraps every exception a tool raises in `ToolError` before the guard sees it, so
every failed call was recorded as `ToolError`, where reads and prompts recorded the real
class: an auditor could not tell a `PermissionError` inside a tool from bad input. A
`ToolError` the tool raises itself (its own message to the caller) stays `ToolError`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from fastmcp import Client, FastMCP
from fastmcp.exceptions import ToolError

from guard import GuardMiddleware, Principal
from guard.audit import AuditLog, open_store

ALICE = Principal("alice", roles=("user",), auth_method="test")
POLICY = "name: p\ndefault_effect: allow\nrules: []\n"


async def test_a_failed_call_records_the_tools_own_exception_class(tmp_path: Path) -> None:
    mcp: FastMCP[Any] = FastMCP("t")

    @mcp.tool
    def read_file(path: str) -> str:
        raise PermissionError(13, "Permission denied", path)

    @mcp.tool
    def refuse(why: str) -> str:
        raise ToolError(why)

    @mcp.tool
    def ok() -> str:
        return "fine"

    store = tmp_path / "audit"
    mw = GuardMiddleware(POLICY, principal=ALICE, audit=AuditLog(store), telemetry=False)
    mcp.add_middleware(mw)
    async with Client(mcp) as client:
        for name, args in (("read_file", {"path": "/etc/shadow"}), ("refuse", {"why": "no"})):
            with pytest.raises(ToolError):
                await client.call_tool(name, args)
        await client.call_tool("ok", {})
    mw.close()
    with open_store(store) as db:
        rows = dict(
            db.sql(
                "SELECT resource, coalesce(error_class, status) FROM decision_log"
                " WHERE method = 'tools/call'"
            ).fetchall()
        )
    assert rows == {"read_file": "PermissionError", "refuse": "ToolError", "ok": "ok"}
