"""A server mounted with `namespace="hr"` puts its resources and templates under that
namespace too (`data://secret` is listed and read as `data://hr/secret`). The guard
decided and recorded them without one: a `resource.namespace` deny rule hid the mount's
tools and prompts, and listed and served its resources and templates, directly mounted or
behind a mounted proxy of a real HTTP server."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from fastmcp import Client, FastMCP
from fastmcp.server import create_proxy
from mcp.shared.exceptions import MCPError
from mw_support import NO_HR_ANYTHING as NO_HR
from mw_support import Recorder, demo_server
from servers import serving_in_thread

from guard import GuardMiddleware, Principal

ALICE = Principal("alice", roles=("user",), auth_method="test")


@asynccontextmanager
async def _child(how: str) -> AsyncIterator[FastMCP[Any]]:
    if how == "mount":
        yield demo_server("hr")
        return
    with serving_in_thread(demo_server("hr").http_app()) as port:
        yield create_proxy(f"http://127.0.0.1:{port}/mcp", name="hr-proxy")


@pytest.mark.parametrize("how", ["mount", "proxy"])
async def test_a_namespace_rule_meets_the_mounts_resources(recorder: Recorder, how: str) -> None:
    async with _child(how) as child:
        main: FastMCP[Any] = FastMCP("main")
        main.mount(child, namespace="hr")
        main.add_middleware(GuardMiddleware(NO_HR, principal=ALICE, audit=None, telemetry=recorder))
        async with Client(main) as client:
            assert [t.name for t in await client.list_tools()] == []
            assert [p.name for p in await client.list_prompts()] == []
            assert [str(r.uri) for r in await client.list_resources()] == []
            assert [t.uri_template for t in await client.list_resource_templates()] == []
            for uri in ("data://hr/secret", "users://hr/7/payroll"):
                with pytest.raises(MCPError) as denied:
                    await client.read_resource(uri)
                assert denied.value.error.message == f"Resource not found: {uri!r}"
    namespaces = {
        (e.method, e.request.resource.name): e.request.resource.namespace
        for e in recorder.events
        if e.method.startswith("resources/")
    }
    assert namespaces and set(namespaces.values()) == {"hr"}, namespaces
