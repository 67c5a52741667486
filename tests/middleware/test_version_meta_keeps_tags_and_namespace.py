"""A request that asks for a version (`_meta.fastmcp.version`) of a component that carries
none was decided on the name and that version alone, for fear of a proxy passing the
version on to its backend. But FastMCP runs an unversioned component whatever version is
asked for: any caller adding a version to its request slipped past every deny rule on tags
or namespaces, on a plain server, a mount, and a proxy of an unversioned backend tool.

Found in review: `call_tool("wipe", version="1")` ran a tool a `tags: [admin]` deny rule
refuses, `read_resource(..., version="1")` and `get_prompt(..., version="1")` likewise,
`hr_payroll` with a version escaped the `hr` namespace deny, and through a proxy, asking
for the backend's newest version ran it without its tags being decided."""

from __future__ import annotations

from typing import Any

import pytest
from fastmcp import Client, FastMCP
from fastmcp.exceptions import ToolError
from fastmcp.server import create_proxy
from mcp.shared.exceptions import MCPError
from mw_support import NO_HR, Recorder

from guard import GuardMiddleware, Principal

ALICE = Principal("alice", roles=("user",), auth_method="test")

NO_ADMIN = """
name: p
default_effect: allow
rules:
  - name: no_admin
    effect: deny
    tools: {tags: [admin]}
    resources: {tags: [admin]}
    prompts: {tags: [admin]}
    actions: ["*"]
"""


def _guard(policy: str, recorder: Recorder) -> GuardMiddleware:
    return GuardMiddleware(policy, principal=ALICE, audit=None, telemetry=recorder)


@pytest.mark.parametrize("version", [None, "1"])
async def test_a_version_asked_of_an_unversioned_component_keeps_its_tags(
    recorder: Recorder, version: str | None
) -> None:
    mcp: FastMCP[Any] = FastMCP("s")

    @mcp.tool(tags={"admin"})
    def wipe() -> str:
        return "WIPED"

    @mcp.resource("data://secret", tags={"admin"})
    def secret() -> str:
        return "SECRET"

    @mcp.prompt(tags={"admin"})
    def admin_prompt() -> str:
        return "ADMIN PROMPT"

    @mcp.tool
    def echo() -> str:
        return "echo"

    mcp.add_middleware(_guard(NO_ADMIN, recorder))
    async with Client(mcp) as client:
        assert (await client.call_tool("echo", {}, version=version)).data == "echo"
        with pytest.raises(ToolError, match="Unknown tool: 'wipe'"):
            await client.call_tool("wipe", {}, version=version)  # observed: WIPED
        with pytest.raises(MCPError, match="Resource not found"):
            await client.read_resource("data://secret", version=version)  # observed: SECRET
        with pytest.raises(MCPError, match="Unknown prompt"):
            await client.get_prompt("admin_prompt", version=version)  # observed: ADMIN PROMPT


async def test_a_version_asked_of_a_mounted_tool_keeps_its_namespace(recorder: Recorder) -> None:
    main: FastMCP[Any] = FastMCP("main")
    hr: FastMCP[Any] = FastMCP("hr")

    @hr.tool
    def payroll() -> str:
        return "PAYROLL"

    main.mount(hr, namespace="hr")
    main.add_middleware(_guard(NO_HR, recorder))
    async with Client(main) as client:
        with pytest.raises(ToolError, match="Unknown tool"):
            await client.call_tool("hr_payroll", {}, version="1")  # observed: PAYROLL


async def test_a_version_asked_through_a_proxy_is_decided_on_what_the_backend_runs(
    recorder: Recorder,
) -> None:
    backend: FastMCP[Any] = FastMCP("backend")

    @backend.tool(name="report", version="1", tags={"safe"})
    def report_v1() -> str:
        return "v1 public report"

    @backend.tool(name="report", version="2", tags={"admin"})
    def report_v2() -> str:
        return "v2 ADMIN report"

    @backend.tool(tags={"admin"})
    def wipe() -> str:
        return "WIPED"

    proxy = create_proxy(backend, name="proxy")
    proxy.add_middleware(_guard(NO_ADMIN, recorder))
    async with Client(proxy) as client:
        # not the newest: its tags are unknown here, decided on name and version alone
        assert (await client.call_tool("report", {}, version="1")).data == "v1 public report"
        for version in (None, "2"):
            with pytest.raises(ToolError, match="Unknown tool: 'report'"):
                await client.call_tool("report", {}, version=version)  # observed: v2 ADMIN
        with pytest.raises(ToolError, match="Unknown tool: 'wipe'"):
            await client.call_tool("wipe", {}, version="1")  # observed: WIPED
    decided = {e.request.resource.version for e in recorder.events if e.method == "tools/call"}
    assert decided >= {"1", "2"}
