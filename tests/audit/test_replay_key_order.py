"""The record keeps arguments with their keys sorted, as JSON objects are unordered; but
`contains` on a mapping searched it in the order the caller sent, and gave up (unknown)
once it had looked at 10,000 keys and values: text the caller put last was found at once
live and never found on replay, where it came first, so an allowed call replayed as
denied. A decision must not depend on the order of an object's keys: the search now
decides the same whatever the order."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from fastmcp import Client, FastMCP
from fastmcp.exceptions import ToolError
from replay_helpers import redecide, rows

from guard import GuardMiddleware, Principal
from guard.audit import AuditLog

POLICY = """
name: batches
default_effect: deny
rules:
  - name: approved_batches
    effect: allow
    tools: {names: [run]}
    conditions: [{field: tool.args.batch, operator: contains, value: APPROVED}]
"""


async def test_a_decision_on_a_big_mapping_does_not_depend_on_its_key_order(
    tmp_path: Path,
) -> None:
    store = tmp_path / "s"
    mcp: FastMCP[Any] = FastMCP("batches")

    @mcp.tool
    def run(batch: dict[str, str]) -> str:
        return "ran"

    mw = GuardMiddleware(POLICY, principal=Principal("erin"), audit=AuditLog(store),
                         telemetry=False)  # fmt: skip
    mcp.add_middleware(mw)
    batch = {f"q{i:04}": "SELECT 1" for i in range(5000)}
    batch["a"] = "APPROVED by ops"  # sent last, recorded first
    reordered = {"a": batch["a"], **batch}
    async with Client(mcp) as client:
        for args in (batch, reordered):
            # too big to search: unknown, in either order (an allow rule does not apply)
            with pytest.raises(ToolError, match="Unknown tool"):
                await client.call_tool("run", {"batch": args})
    mw.close()
    calls = rows(store, "method = 'tools/call'")
    assert len(calls) == 2
    decided = [(r["allowed"], r["reason"], r["rule"], r["errors"]) for r in calls]
    assert decided[0] == decided[1]  # the same arguments, in either order
    for row, live in zip(calls, decided, strict=True):
        replayed = redecide(store, row)
        assert (replayed.allowed, replayed.reason, replayed.rule, list(replayed.errors)) == live
