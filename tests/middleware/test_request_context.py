"""The request context conditions see: shared by the requests of one place, read-only,
and a bounded number of them kept."""

from __future__ import annotations

import pytest
from fastmcp import Client, FastMCP

from guard import GuardMiddleware, Principal
from guard._request import _MAX_CONTEXTS, _context, _contexts


def test_requests_from_one_place_share_one_read_only_context() -> None:
    first = _context("http", "s-1", "demo")
    assert first is _context("http", "s-1", "demo")
    assert first == {"transport": "http", "session_id": "s-1", "server": "demo"}
    assert _context("http", "s-2", "demo") is not first
    with pytest.raises(TypeError):
        first["session_id"] = "s-2"  # type: ignore[index]


def test_many_sessions_keep_a_bounded_number_of_contexts() -> None:
    for n in range(3 * _MAX_CONTEXTS):
        assert _context("http", f"session-{n}", "demo")["session_id"] == f"session-{n}"
    assert len(_contexts) <= _MAX_CONTEXTS


async def test_calls_are_decided_with_their_place_as_context() -> None:
    seen = []

    class Recording(GuardMiddleware):
        def _decide(self, call, *args, **kwargs):  # type: ignore[no-untyped-def]
            seen.append(call.context)
            return super()._decide(call, *args, **kwargs)

    mcp: FastMCP[None] = FastMCP("ctx")

    @mcp.tool
    def echo(text: str) -> str:
        return text

    policy = "name: p\nrules:\n  - {name: all, effect: allow, tools: {patterns: ['*']}}\n"
    mcp.add_middleware(
        Recording(policy, principal=Principal("a", auth_method="stdio"), audit=None,
                  telemetry=False)
    )  # fmt: skip
    async with Client(mcp) as client:
        await client.call_tool("echo", {"text": "x"})
        await client.call_tool("echo", {"text": "y"})
    assert seen[0] is seen[1]
    assert dict(seen[0]) == {"transport": "memory", "session_id": None, "server": "ctx"}
