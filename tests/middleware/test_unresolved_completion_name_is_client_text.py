"""A completion whose reference the guard could not resolve (its lookup raised: a proxy's
backend down, a provider's bug) is denied, as it must be; the name or URI it names is
only the caller's text then, as for a tool the server does not have. It was taken for a
component's name: the decision's span was named after it and its record kept it
verbatim and unbounded (a credential sent there, 10,000 characters)."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

import pytest
from fastmcp import Client, FastMCP
from mcp.shared.exceptions import MCPError
from mw_support import Recorder

from guard import GuardMiddleware, Principal
from guard.audit import AuditLog, open_store
from guard.policy.model import UNKNOWN_COMPONENT

SECRET = "sk-live-COMPLETIONabcdefghijklmnop1234"


async def test_an_unresolved_completion_reference_is_shown_as_client_text(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, recorder: Recorder
) -> None:
    mcp: FastMCP[Any] = FastMCP("s")

    @mcp.prompt
    def greet(name: str) -> str:
        return f"hello {name}"

    @mcp.completion
    def complete(ref: Any, argument: Any, context: Any) -> list[str]:
        return ["alpha"]

    async def unreachable(ref_type: str, key: str) -> Any:
        raise ConnectionError("backend down")

    monkeypatch.setattr(mcp, "_completion_target", unreachable)
    guard = GuardMiddleware(
        "name: p\ndefault_effect: allow\nrules: []\n",
        principal=Principal("alice", ("user",)),
        audit=AuditLog(tmp_path / "store"),
        telemetry=recorder,
    )
    mcp.add_middleware(guard)
    refs = [
        {"type": "ref/prompt", "name": SECRET},
        {"type": "ref/prompt", "name": "g" * 10_000},
        {"type": "ref/resource", "uri": f"users://{SECRET}/{{x}}"},
    ]
    async with Client(mcp) as client:
        for ref in refs:
            # denied (an error while resolving); FastMCP's own lookup fails next
            with contextlib.suppress(MCPError):
                await client.complete(ref, {"name": "name", "value": "a"})
    guard.close()
    assert [target for method, target in recorder.started if method == "completion/complete"] == [
        UNKNOWN_COMPONENT
    ] * 3
    for path in (tmp_path / "store").rglob("*"):
        if path.is_file():
            assert SECRET.encode() not in path.read_bytes(), path
    rows = (
        open_store(tmp_path / "store")
        .sql("SELECT resource, allowed, reason FROM decisions ORDER BY ts")
        .fetchall()
    )
    assert len(rows) == 3 and all(len(r) <= 256 and not a and why == "error" for r, a, why in rows)
