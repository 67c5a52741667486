"""The answers a guard keeps to give a repeated listing again (`Answered`) are bounded by
the components they hold, not only by the listings: each holds every component of its
listing, its decision and its record's JSON. Keyed by the caller's user id, roles and agent
id (often the caller's own `X-Agent-Id`), 256 listings of a server with 1,000 tools held
256,000 decisions (some 64 MB), pinned by one caller listing twice under each of 256 agent
ids, where the policy memo itself keeps at most `MEMO_SIZE`."""

from __future__ import annotations

import itertools
from typing import Any

from fastmcp import Client, FastMCP

from guard import GuardMiddleware, Principal
from guard.identity.base import RequestInfo
from guard.policy.policyset import MEMO_SIZE

POLICY = """
name: p
default_effect: deny
rules:
  - {name: users, effect: allow, agents: {roles: [user]}, actions: ["*"]}
"""
TOOLS = 300
AGENTS = 60  # each lists twice: the second listing is kept to answer again


class _NewAgentEveryOtherRequest:
    method = "api_key"

    def __init__(self) -> None:
        self._count = itertools.count()

    async def authenticate(self, info: RequestInfo) -> Principal:
        n = next(self._count) // 2
        return Principal("alice", ("user",), agent_id=f"agent-{n}", auth_method="api_key")


def _server() -> FastMCP:
    mcp = FastMCP("many-tools")
    for i in range(TOOLS):
        mcp.tool(lambda x: x, name=f"tool_{i:04d}")
    return mcp


def _holds_components(key: Any) -> bool:
    parts = key if isinstance(key, tuple) else ()
    return any(isinstance(part, tuple) and len(part) >= TOOLS for part in parts)


def _decisions_held(mw: GuardMiddleware) -> int:
    answered: dict[Any, Any] = mw._answered
    return sum(len(a.shown) for a in answered.values())


async def test_listings_kept_to_answer_again_hold_a_bounded_number_of_decisions() -> None:
    mw = GuardMiddleware(
        POLICY, authenticator=_NewAgentEveryOtherRequest(), audit=None, telemetry=False
    )
    mcp = _server()
    mcp.add_middleware(mw)
    held = []
    async with Client(mcp) as client:
        for _ in range(AGENTS):
            assert len(await client.list_tools()) == TOOLS
            assert len(await client.list_tools()) == TOOLS
            held.append(_decisions_held(mw))
    mw.close()
    assert max(held) <= 2 * MEMO_SIZE, max(held)
    assert held[0] == TOOLS  # still kept: a repeated listing is answered again


async def test_listings_met_once_are_remembered_without_their_components() -> None:
    """A listing met once is remembered, to keep its answers if it comes again: as a
    fingerprint, not as one id per component (256 callers listing once held 256 tuples of
    1,000 ids, 10 MB, for a server of 1,000 tools)."""
    mw = GuardMiddleware(
        POLICY, authenticator=_NewAgentEveryOtherRequest(), audit=None, telemetry=False
    )
    mcp = _server()
    mcp.add_middleware(mw)
    async with Client(mcp) as client:
        for _ in range(3):  # each caller lists twice
            assert len(await client.list_tools()) == TOOLS  # met once: remembered ...
            assert mw._seen and not any(map(_holds_components, mw._seen))
            assert len(await client.list_tools()) == TOOLS  # ... and kept when met again
    mw.close()
    assert len(mw._answered) == 3
