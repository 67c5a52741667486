"""Decisions become records in a real store: queued before the tool runs, outcome after."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fastmcp import Client
from fastmcp.exceptions import ToolError
from mw_support import POLICY, demo_server

from guard import GuardMiddleware, Principal
from guard.audit import AuditLog, open_store

ALICE = Principal("alice", roles=("user",))


async def test_every_decision_and_outcome_is_recorded(tmp_path: Path) -> None:
    store = tmp_path / "audit.duckdb"
    mw = GuardMiddleware(
        POLICY,
        principal=ALICE,
        audit=store,
        telemetry=False,
        shadow=POLICY.replace("user_safe_tools", "renamed"),
    )
    mcp = demo_server()

    @mcp.tool(tags={"safe"})
    def login(user: str, password: str) -> str:
        return f"welcome {user}"

    mcp.add_middleware(mw)
    async with Client(mcp) as client:
        await client.call_tool("login", {"user": "alice", "password": "hunter2"})
        with pytest.raises(ToolError):
            await client.call_tool("fail", {})
        with pytest.raises(ToolError):
            await client.call_tool("drop_table", {"name": "t"})
        await client.list_prompts()
    mw.close()
    with open_store(store) as db:
        calls = db.sql(
            "SELECT resource, allowed, status, error_class, policy_hash, shadow_rule, args"
            " FROM decision_log WHERE method = 'tools/call' ORDER BY ts"
        ).fetchall()
        listed = db.sql("SELECT count(*) FROM decisions WHERE method = 'prompts/list'").fetchall()
        contexts = db.sql("SELECT context, session_id FROM decisions").fetchall()
        hashes = {h for (h,) in db.sql("SELECT policy_hash FROM policies").fetchall()}
    assert [(c[0], c[1], c[2], c[3]) for c in calls] == [
        ("login", True, "ok", None),
        ("fail", True, "error", "ToolError"),
        ("drop_table", False, None, None),
    ]
    assert {c[4] for c in calls} == {mw.policy_set.hash}
    assert calls[0][5] == "renamed"  # the draft's rule, next to the live one
    assert "hunter2" not in calls[0][6]
    assert listed == [(2,)]  # one record per prompt, hidden one included
    # the context conditions saw, as a JSON object replay can hand to them again
    for context, session_id in contexts:
        assert json.loads(context) == {
            "server": "demo", "session_id": session_id, "transport": "memory",
        }  # fmt: skip
    assert {mw.policy_set.hash, mw.shadow_set.hash} <= hashes  # type: ignore[union-attr]


async def test_default_store_is_in_the_working_directory(tmp_path: Path) -> None:
    mw = GuardMiddleware(POLICY, principal=ALICE, telemetry=False)
    assert isinstance(mw.audit, AuditLog)
    mcp = demo_server()
    mcp.add_middleware(mw)
    async with Client(mcp) as client:
        await client.call_tool("echo", {"text": "x"})
    mw.close()
    with open_store(tmp_path / "mcp-guard-audit.duckdb") as db:
        assert db.sql("SELECT count(*) FROM decisions").fetchall()[0][0] >= 1


async def test_durable_mode_commits_the_decision_before_the_tool_runs(tmp_path: Path) -> None:
    store = tmp_path / "audit.duckdb"
    audit = AuditLog(store, durable=True)
    mw = GuardMiddleware(POLICY, principal=ALICE, audit=audit, telemetry=False)
    mcp = demo_server()
    seen_by_tool: list[int] = []

    @mcp.tool(tags={"safe"})
    def transfer(amount: int) -> str:
        # A reader in the tool itself already finds this call's decision on disk.
        with open_store(store) as db:
            [(n,)] = db.sql(
                "SELECT count(*) FROM decisions"
                " WHERE resource = 'transfer' AND method = 'tools/call' AND allowed"
            ).fetchall()
        seen_by_tool.append(n)
        return "done"

    mcp.add_middleware(mw)
    async with Client(mcp) as client:
        for _ in range(3):
            await client.call_tool("transfer", {"amount": 5})
    mw.close()
    assert seen_by_tool == [1, 2, 3]


def test_the_fields_the_middleware_fills_by_position_keep_their_order() -> None:
    """The middleware builds `AccessRequest` and `DecisionEvent` positionally (a list of 100
    tools makes 100 of each); most of their fields are text, so a reordering would pass
    the type checker and swap what the records say."""
    import dataclasses
    import inspect

    from guard import AccessRequest
    from guard.events import DecisionEvent

    assert [f.name for f in dataclasses.fields(DecisionEvent)] == [
        "decision_id", "request", "decision", "shadow", "server", "transport", "session_id",
        "request_id", "method", "trace_id", "span_id",
    ]  # fmt: skip
    assert list(inspect.signature(AccessRequest).parameters)[:7] == [
        "principal", "resource", "action", "args", "time", "method", "context",
    ]  # fmt: skip
