"""A shadow draft is decided on the request the live set decided, and changes nothing of
it: a custom condition of the draft that edits what it is handed (the arguments, the
component's meta, the claims) edits a copy, never what the tool runs with, what is
recorded, or what later requests are decided on."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastmcp import Client, FastMCP
from mw_support import outcomes

from guard import GuardMiddleware, Principal
from guard.audit import AuditLog, open_store
from guard.policy.conditions import register_condition, unregister_condition

LIVE = """
name: live
default_effect: deny
rules:
  - name: sends_hello
    effect: allow
    tools: {names: [send]}
    conditions: [{field: tool.args.to, operator: equals, value: hello}]
  - name: lists
    effect: allow
    actions: [list]
"""

DRAFT = """
name: draft
default_effect: deny
rules:
  - name: meddling
    effect: allow
    conditions: [{custom: meddles}]
"""


def _meddles(ctx: Any) -> bool:
    """A careless draft condition: it "normalises" what it reads in place."""
    for place in (ctx["tool"]["args"], ctx["tool"]["metadata"], ctx["user"]["claims"]):
        place["to"] = "everyone"
        for value in place.values():
            if isinstance(value, list):
                value.append("everyone")
    return True


@pytest.fixture
def meddles() -> Iterator[None]:
    register_condition("meddles", _meddles)
    yield
    unregister_condition("meddles")


async def test_a_draft_condition_cannot_edit_the_call_it_decides(
    tmp_path: Path, meddles: None
) -> None:
    mcp: FastMCP[Any] = FastMCP("s")

    @mcp.tool(meta={"to": "ops", "cc": ["a"]})
    def send(to: str, cc: list[str]) -> str:
        return f"sent to {to} cc {cc}"

    store = tmp_path / "audit"
    claims = {"to": "me", "groups": ["x"]}
    guard = GuardMiddleware(
        LIVE, principal=Principal("u", claims=claims), audit=AuditLog(store), telemetry=False,
        shadow=DRAFT,
    )  # fmt: skip
    mcp.add_middleware(guard)
    async with Client(mcp) as client:
        for _ in range(2):  # the second call is decided on what the first left
            result = await client.call_tool("send", {"to": "hello", "cc": ["b"]})
            assert result.data == "sent to hello cc ['b']"
        tool = await mcp.get_tool("send")
    guard.close()
    assert claims == {"to": "me", "groups": ["x"]}
    assert tool.meta == {"to": "ops", "cc": ["a"]}
    assert outcomes(store, "tools/call") == [("send", True, "ok", None)] * 2
    with open_store(store) as db:
        rows = db.sql(
            "SELECT args, rule, shadow_rule FROM decisions WHERE method = 'tools/call'"
        ).fetchall()
    assert set(rows) == {('{"cc":["b"],"to":"hello"}', "sends_hello", "meddling")}
