"""A tool's outcome names the class of the exception the tool raised. Found in review:
FastMCP wraps every exception a tool raises in `ToolError` before the guard sees it, so
every failed call was recorded as `ToolError`: an auditor could not tell a
`PermissionError` inside a tool from bad input. A `ToolError` the tool raises itself (its
own message to the caller) stays `ToolError`. Found in a later review: reads and prompts
were thought to record the real class, but FastMCP 4 wraps theirs too (`ResourceError`,
`PromptError`); they are unwrapped alike."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from fastmcp import Client, FastMCP
from fastmcp.exceptions import PromptError, ResourceError, ToolError
from mcp.shared.exceptions import MCPError

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


async def test_a_failed_read_or_prompt_records_the_handlers_own_exception_class(
    tmp_path: Path,
) -> None:
    # FastMCP 4 wraps what a resource or prompt function raises in `ResourceError` /
    # `PromptError` as well: the outcome named the wrapper, not the failure
    mcp: FastMCP[Any] = FastMCP("t")

    @mcp.resource("file://payroll")
    def payroll() -> str:
        raise PermissionError(13, "Permission denied", "/srv/payroll")

    @mcp.resource("file://gone")
    def gone() -> str:
        raise ResourceError("moved away")

    @mcp.prompt
    def summarize(topic: str) -> str:
        raise TimeoutError("model did not answer")

    @mcp.prompt
    def greet() -> str:
        raise PromptError("no greeting today")

    store = tmp_path / "audit"
    mw = GuardMiddleware(POLICY, principal=ALICE, audit=AuditLog(store), telemetry=False)
    mcp.add_middleware(mw)
    async with Client(mcp) as client:
        for uri in ("file://payroll", "file://gone"):
            with pytest.raises(MCPError):
                await client.read_resource(uri)
        for name, args in (("summarize", {"topic": "q3"}), ("greet", {})):
            with pytest.raises(MCPError):
                await client.get_prompt(name, args)
    mw.close()
    with open_store(store) as db:
        rows = dict(
            db.sql(
                "SELECT resource, error_class FROM decision_log"
                " WHERE method IN ('resources/read', 'prompts/get')"
            ).fetchall()
        )
    assert rows == {
        "payroll": "PermissionError",
        "gone": "ResourceError",
        "summarize": "TimeoutError",
        "greet": "PromptError",
    }
