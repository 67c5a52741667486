"""The lookup cache must not decide a read on a template once a concrete resource that
the same session can now see shadows it: FastMCP reads the concrete resource."""

from __future__ import annotations

from typing import Any

import pytest
from fastmcp import Client, Context, FastMCP
from fastmcp.exceptions import ResourceError
from mcp.shared.exceptions import MCPError
from mw_support import Recorder

from guard import GuardMiddleware, Principal

ALICE = Principal("alice", roles=("user",), auth_method="test")

POLICY = """
name: p
default_effect: deny
rules:
  - name: no_secret
    priority: 100
    effect: deny
    resources: {tags: [secret]}
    actions: ["*"]
  - name: generic_reads
    effect: allow
    resource_templates: {names: [generic]}
    actions: [list, read]
  - name: tools
    effect: allow
    tools: {names: [unlock]}
    actions: [list, call]
"""


async def test_a_concrete_resource_enabled_for_the_session_is_decided_on_its_own_tags(
    recorder: Recorder,
) -> None:
    mcp: FastMCP[Any] = FastMCP("s")

    @mcp.resource("data://{name}", name="generic")
    def generic(name: str) -> str:
        return f"generic {name}"

    @mcp.resource("data://x", tags={"secret"})
    def secret() -> str:
        return "TOP SECRET"

    mcp.disable(keys={"resource:data://x@"})  # only for sessions that unlock it

    @mcp.tool
    async def unlock(ctx: Context) -> str:
        await ctx.enable_components(keys={"resource:data://x@"})
        return "unlocked"

    mcp.add_middleware(GuardMiddleware(POLICY, principal=ALICE, audit=None, telemetry=recorder))
    async with Client(mcp) as client:
        # The guard resolves data://x to the template (the concrete resource is hidden);
        # FastMCP refuses the read (a hidden concrete resource shadows templates), so
        # nothing is served yet. (Found in review: the guard remembered the template.)
        with pytest.raises((MCPError, ResourceError), match="not found"):
            await client.read_resource("data://x")
        await client.call_tool("unlock", {})
        # data://x is now the concrete resource tagged secret: denied by `no_secret`
        with pytest.raises((MCPError, ResourceError), match="not found"):
            await client.read_resource("data://x")
