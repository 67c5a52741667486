"""`exists` on an attribute every request has (`user.agent_id`, `resource.template`, ...)
asks whether it has a value: a caller without an agent has no agent id, a concrete read has
no template. Read as "the attribute is there", it held for every request, so an allow rule
"only agents" admitted every caller."""

from __future__ import annotations

from typing import Any

import pytest
from fastmcp import Client, FastMCP
from mcp.shared.exceptions import MCPError

from guard import AccessRequest, GuardMiddleware, Principal, Resource, load_policies


def _policy(field: str, operator: str = "exists") -> Any:
    return load_policies(
        {"name": "p", "rules": [{"name": "r", "effect": "allow",
                                 "conditions": [{"field": field, "operator": operator}]}]}
    )  # fmt: skip


_NOBODY = Principal("u")
_TOOL = Resource("tool", "t")


@pytest.mark.parametrize(
    ("field", "principal", "resource", "present"),
    [
        ("user.agent_id", _NOBODY, _TOOL, False),
        ("user.agent_id", Principal("u", agent_id="bot"), _TOOL, True),
        ("resource.template", _NOBODY, _TOOL, False),
        ("resource.uri", _NOBODY, _TOOL, False),
        ("tool.version", _NOBODY, _TOOL, False),
        ("tool.version", _NOBODY, Resource("tool", "t", version="2"), True),
        ("request.method", _NOBODY, _TOOL, False),  # a request made by hand names none
        ("user.id", _NOBODY, _TOOL, True),
    ],
)
def test_an_attribute_without_a_value_is_not_present(
    field: str, principal: Principal, resource: Resource, present: bool
) -> None:
    ask = AccessRequest(principal, resource, "call")
    assert _policy(field).decide(ask).allowed is present
    assert _policy(field, "not_exists").decide(ask).allowed is not present


def test_a_context_fact_without_a_value_is_not_present() -> None:
    no_session = {"transport": "http", "session_id": None, "server": "s"}
    ask = AccessRequest(_NOBODY, _TOOL, "call", context=no_session)
    assert not _policy("request.context.session_id").decide(ask).allowed
    assert _policy("request.context.session_id", "not_exists").decide(ask).allowed
    assert _policy("request.context.transport").decide(ask).allowed


def test_a_key_sent_with_a_null_value_is_still_present() -> None:
    ask = AccessRequest(Principal("u"), Resource("tool", "t"), "call", args={"q": None})
    assert _policy("tool.args.q").decide(ask).allowed


def _server(principal: Principal) -> FastMCP[None]:
    mcp: FastMCP[None] = FastMCP("presence")

    @mcp.resource("data://plain")
    def plain() -> str:
        return "plain"

    @mcp.resource("users://{uid}/profile")
    def profile(uid: str) -> str:
        return f"profile {uid}"

    policy = """
name: presence
rules:
  - name: agents_read_through_templates
    effect: allow
    actions: [read]
    conditions:
      - {field: user.agent_id, operator: exists}
      - {field: resource.template, operator: exists}
"""
    mcp.add_middleware(GuardMiddleware(policy, principal=principal, audit=None, telemetry=False))
    return mcp


async def _reads(principal: Principal) -> list[str]:
    done = []
    async with Client(_server(principal)) as client:
        for uri in ("data://plain", "users://7/profile"):
            try:
                await client.read_resource(uri)
                done.append(uri)
            except MCPError:
                pass
    return done


async def test_only_agents_read_and_only_through_templates_on_a_guarded_server() -> None:
    assert await _reads(Principal("alice", auth_method="stdio")) == []
    bot = Principal("alice", agent_id="bot", auth_method="stdio")
    assert await _reads(bot) == ["users://7/profile"]
