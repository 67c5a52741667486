"""A call answered with an error result failed: its outcome says so. Found in review: the
outcome was `ok` whenever the handler returned rather than raised, and a tool that fails
by returning `ToolResult(is_error=True)`, or any tool behind a proxy (FastMCP passes the
backend's error result through, it does not raise), was recorded as a success while its
caller got an error."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastmcp import Client, FastMCP
from fastmcp.server import create_proxy
from fastmcp.tools import ToolResult
from mw_support import USERS_ALLOWED, outcomes

from guard import GuardMiddleware, Principal
from guard.audit import AuditLog

ALICE = Principal("alice", roles=("user",), auth_method="test")


async def test_an_error_result_is_an_error_outcome(tmp_path: Path) -> None:
    backend: FastMCP[Any] = FastMCP("backend")

    @backend.tool
    def transfer(amount: int) -> str:
        raise PermissionError("over the limit")

    @backend.tool
    def balance() -> str:
        return "12"

    mcp: FastMCP[Any] = FastMCP("front")

    @mcp.tool
    def refuse() -> ToolResult:
        return ToolResult("not today", is_error=True)

    mcp.mount(create_proxy(backend), namespace="bank")
    store = tmp_path / "audit"
    mw = GuardMiddleware(USERS_ALLOWED, principal=ALICE, audit=AuditLog(store), telemetry=False)
    mcp.add_middleware(mw)
    async with Client(mcp) as client:
        for name, args in (("refuse", {}), ("bank_transfer", {"amount": 10**6})):
            result = await client.call_tool(name, args, raise_on_error=False)
            assert result.is_error
        assert not (await client.call_tool("bank_balance", {})).is_error
    mw.close()
    assert sorted(outcomes(store, "tools/call")) == [
        ("bank_balance", True, "ok", None),
        ("bank_transfer", True, "error", "ToolError"),
        ("refuse", True, "error", "ToolError"),
    ]
