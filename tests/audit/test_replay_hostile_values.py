"""Values a hostile caller sends to a real guarded server, nested deep or wide, are decided
as replaying their record decides: a mapping nested 100 keys below the arguments is
recorded as `<redacted:too-deep>` (unknown to replay), so the live decision finds it
unknown too. Before, 150 levels were decided on (allowed, where replay denied). (An
in-memory client sends at most ~250 levels; over HTTP, 500 levels raised RecursionError
while deciding: see tests/policy/test_condition_cost.py.)"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastmcp import Client, FastMCP
from fastmcp.exceptions import ToolError
from replay_helpers import again, recorded, redecide, rows

from guard import GuardMiddleware, Principal
from guard.audit import AuditLog

POLICY = """
name: sizes
default_effect: allow
rules:
  - name: no_giants
    effect: deny
    tools: {names: [echo]}
    conditions: [{field: tool.args.x, operator: len_gte, value: 1000000000}]
"""


def nested(depth: int) -> Any:
    value: Any = "leaf"
    for _ in range(depth):
        value = {"a": value}
    return value


async def test_deep_and_wide_arguments_decide_as_their_records_replay(tmp_path: Path) -> None:
    store = tmp_path / "s"
    mcp: FastMCP[Any] = FastMCP("hostile")

    @mcp.tool
    def echo(x: Any) -> str:
        return "ran"

    log = AuditLog(store)
    mw = GuardMiddleware(POLICY, principal=Principal("eve"), audit=log, telemetry=False)
    mcp.add_middleware(mw)
    outcomes = []
    async with Client(mcp) as client:
        for x in (nested(20), nested(150), nested(250), list(range(20_000))):
            try:
                outcomes.append((await client.call_tool("echo", {"x": x})).data)
            except ToolError:
                outcomes.append("denied")
    mw.close()
    assert log.stats()["append_errors"] == 0
    assert outcomes == ["ran", "denied", "denied", "denied"]
    calls = rows(store, "method = 'tools/call'")
    assert len(calls) == 4
    for row in calls:
        assert row["reason"] != "error"
        assert again(redecide(store, row)) == recorded(row), row["args_redacted"]
