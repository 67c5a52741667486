"""Which component a request is decided on: the one FastMCP runs, whatever the session
sees (versions enabled per session) or the proxy forwards (a version asked for)."""

from __future__ import annotations

from typing import Any

import pytest
from fastmcp import Client, Context, FastMCP
from fastmcp.exceptions import ToolError
from fastmcp.server import create_proxy
from mw_support import Recorder

from guard import GuardMiddleware, Principal

ALICE = Principal("alice", roles=("user",), auth_method="test")

SAFE_ONLY = """
name: p
default_effect: deny
rules:
  - name: user_safe
    effect: allow
    agents: {roles: [user]}
    tools: {tags: [safe]}
    actions: [list, call]
"""


# The lookup cache is shared by every session (key: server, kind, name), but which
# component a name resolves to depends on the session (session visibility).
async def test_lookup_cache_decides_on_another_sessions_component(recorder: Recorder) -> None:
    mcp: FastMCP[Any] = FastMCP("s")

    @mcp.tool(name="report", version="1", tags={"safe"})
    def report_v1() -> str:
        return "v1 public report"

    @mcp.tool(name="report", version="2", tags={"admin"})
    def report_v2() -> str:
        return "v2 ADMIN report"

    mcp.disable(keys={"tool:report@2"})  # v2 only for sessions that unlock it

    @mcp.tool(tags={"safe"})
    async def unlock(ctx: Context) -> str:
        await ctx.enable_components(keys={"tool:report@2"})
        return "unlocked"

    mcp.add_middleware(GuardMiddleware(SAFE_ONLY, principal=ALICE, audit=None, telemetry=recorder))
    async with Client(mcp) as b, Client(mcp) as a:
        assert (await b.call_tool("report", {})).data == "v1 public report"  # caches v1
        await a.call_tool("unlock", {})
        # In session A "report" is v2, tagged admin: alice may not call it.
        with pytest.raises(ToolError, match="Unknown tool: 'report'"):
            await a.call_tool("report", {})  # observed: runs v2, decided on v1


# A proxy forwards the caller's `_meta` (fastmcp.version) to the backend, but the guard
# decides on the proxy's one unversioned tool (tags of the highest backend version).
async def test_proxy_version_meta_runs_a_version_the_guard_never_decided(
    recorder: Recorder,
) -> None:
    backend: FastMCP[Any] = FastMCP("backend")

    @backend.tool(name="report", version="1", tags={"admin"})
    def report_v1() -> str:
        return "v1 ADMIN report"

    @backend.tool(name="report", version="2", tags={"safe"})
    def report_v2() -> str:
        return "v2 public report"

    proxy = create_proxy(backend, name="proxy")
    proxy.add_middleware(
        GuardMiddleware(SAFE_ONLY, principal=ALICE, audit=None, telemetry=recorder)
    )
    async with Client(proxy) as client:
        assert (await client.call_tool("report", {})).data == "v2 public report"
        with pytest.raises(ToolError, match="Unknown tool: 'report'"):
            await client.call_tool("report", {}, version="1")  # observed: v1 ADMIN report


async def test_names_callers_send_are_not_kept_after_their_request() -> None:
    # An unknown tool's Resource holds the caller's text; the policy set's memo of
    # decisions keeps none of it once the denial is sent.
    mcp: FastMCP[Any] = FastMCP("s")

    @mcp.tool
    def get_weather() -> str:
        return "sunny"

    policy = {"name": "svc", "rules": [{"name": "w", "effect": "allow",
                                        "tools": {"names": ["get_weather"]}}]}  # fmt: skip
    guard = GuardMiddleware(policy, principal=Principal("alice"), audit=None, telemetry=False)
    mcp.add_middleware(guard)
    async with Client(mcp) as client:
        assert (await client.call_tool("get_weather", {})).data == "sunny"
        for i in range(5):
            with pytest.raises(ToolError, match="Unknown tool"):
                await client.call_tool(f"{i}:" + "x" * 100_000, {})
    memo = guard.policy_set._memo
    kept = [ref() for ref, _ in memo.values()]
    assert {r.name for r in kept if r is not None} == {"get_weather"}
    guard.close()


async def test_lookup_cache_keeps_no_long_key_and_drops_expired_ones() -> None:
    """Found in review: template reads cached each caller's URI (looked up before anyone
    is authenticated), expired entries stayed until 4,096 had piled up."""
    import time
    from types import SimpleNamespace

    from guard._fastmcp import LookupCache

    cache, server = LookupCache(ttl=0.05), object()

    async def found() -> Any:
        return SimpleNamespace(version=None)

    await cache.get(server, None, "resource", "vault://" + "x" * 2000, found)
    assert cache._entries == {}
    for i in range(10):
        await cache.get(server, None, "resource", f"vault://{i}", found)
    assert len(cache._entries) == 10
    time.sleep(1.1)  # expired, and a sweep is due (at most once per second)
    await cache.get(server, None, "resource", "vault://new", found)
    assert [key[3] for key in cache._entries] == ["vault://new"]
