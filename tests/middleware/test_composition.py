"""The same middleware in front of a proxy and on a server with mounted servers."""

from __future__ import annotations

from typing import Any

import pytest
from fastmcp import Client, FastMCP
from fastmcp.exceptions import ToolError
from fastmcp.server import create_proxy
from mw_support import POLICY, Recorder, demo_server

from guard import GuardMiddleware, Principal

ALICE = Principal("alice", roles=("user",))


async def test_guard_in_front_of_a_proxy(recorder: Recorder) -> None:
    backend = demo_server("backend")  # unguarded: the proxy is the only gate
    proxy = create_proxy(backend, name="proxy")
    proxy.add_middleware(GuardMiddleware(POLICY, principal=ALICE, audit=None, telemetry=recorder))
    async with Client(proxy) as client:
        assert sorted(t.name for t in await client.list_tools()) == ["echo", "fail"]
        assert (await client.call_tool("echo", {"text": "p"})).data == "echo: p"
        with pytest.raises(ToolError, match="Unknown tool: 'drop_table'"):
            await client.call_tool("drop_table", {"name": "t"})
        assert [p.name for p in await client.list_prompts()] == ["greet"]
    call = next(e for e in recorder.events if e.method == "tools/call")
    assert call.server == "proxy" and call.request.resource.tags == frozenset({"safe"})


NAMESPACED = """
name: ns
default_effect: deny
rules:
  - name: billing_tools
    effect: allow
    tools: {namespaces: [billing]}
    actions: [list, call]
"""


async def test_mounted_server_prefix_is_the_namespace(recorder: Recorder) -> None:
    billing: FastMCP[Any] = FastMCP("billing")

    @billing.tool
    def invoice(n: int) -> str:
        return f"invoice {n}"

    hr: FastMCP[Any] = FastMCP("hr")

    @hr.tool
    def salaries() -> str:
        return "secret"

    main: FastMCP[Any] = FastMCP("main")
    main.mount(billing, namespace="billing")
    main.mount(hr, namespace="hr")
    main.add_middleware(
        GuardMiddleware(NAMESPACED, principal=ALICE, audit=None, telemetry=recorder)
    )
    async with Client(main) as client:
        assert [t.name for t in await client.list_tools()] == ["billing_invoice"]
        assert (await client.call_tool("billing_invoice", {"n": 3})).data == "invoice 3"
        with pytest.raises(ToolError, match="Unknown tool: 'hr_salaries'"):
            await client.call_tool("hr_salaries", {})
    namespaces = {e.request.resource.name: e.request.resource.namespace for e in recorder.events}
    assert namespaces["billing_invoice"] == "billing" and namespaces["hr_salaries"] == "hr"


async def test_tool_meta_namespace_and_version_reach_the_request(recorder: Recorder) -> None:
    mcp: FastMCP[Any] = FastMCP("meta")

    @mcp.tool(meta={"namespace": "billing"}, version="2.1")
    def charge() -> str:
        return "charged"

    mcp.add_middleware(GuardMiddleware(NAMESPACED, principal=ALICE, audit=None, telemetry=recorder))
    async with Client(mcp) as client:
        assert (await client.call_tool("charge", {})).data == "charged"
    resource = recorder.events[-1].request.resource
    assert resource.namespace == "billing" and resource.version == "2.1"
