"""An allowed completion runs the server's completion handler: its record gets the
outcome, as a call's, read's or prompt's does. Found in review: it got none, and a record
allowed and without an outcome reads as a request still running, or cut short by a crash
(see `CancelledBeforeRun`); a handler that raised left no trace in the store."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from fastmcp import Client, FastMCP
from mcp.shared.exceptions import MCPError
from mw_support import USERS_ALLOWED, outcomes

from guard import GuardMiddleware, Principal
from guard.audit import AuditLog

ALICE = Principal("alice", roles=("user",), auth_method="test")

POLICY = USERS_ALLOWED


async def test_an_allowed_completion_has_the_outcome_of_its_handler(tmp_path: Path) -> None:
    mcp: FastMCP[Any] = FastMCP("c")

    @mcp.prompt
    def greet(name: str) -> str:
        return f"Hello {name}"

    @mcp.completion
    def complete(ref: Any, argument: Any, context: Any) -> list[str]:
        if argument.value == "boom":
            raise ValueError("completion failed")
        return ["alpha"]

    store = tmp_path / "audit"
    mw = GuardMiddleware(POLICY, principal=ALICE, audit=AuditLog(store), telemetry=False)
    mcp.add_middleware(mw)
    ref = {"type": "ref/prompt", "name": "greet"}
    async with Client(mcp) as client:
        assert (await client.complete(ref, {"name": "name", "value": "a"})).values == ["alpha"]
        with pytest.raises(MCPError):
            await client.complete(ref, {"name": "name", "value": "boom"})
    mw.close()
    assert outcomes(store, "completion/complete") == [
        ("greet", True, "ok", None),
        ("greet", True, "error", "ValueError"),
    ]
