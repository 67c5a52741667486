"""A mounted app tool called by its hashed backend name (`__<hash>_<name>`, the address
FastMCP apps use) is the same component as under its listed name: same namespace, same
decision."""

from __future__ import annotations

from typing import Any

from fastmcp import Client, FastMCP
from fastmcp.apps.app import FastMCPApp
from fastmcp.server.providers.addressing import hashed_backend_name
from mw_support import NO_HR, Recorder

from guard import GuardMiddleware, Principal

ALICE = Principal("alice", roles=("user",), auth_method="test")


def composed(recorder: Recorder) -> FastMCP[Any]:
    hr: FastMCP[Any] = FastMCP("hr")
    app = FastMCPApp("payroll")

    @app.tool(model=True)
    def export_salaries() -> str:
        return "ALL SALARIES"

    hr.add_provider(app)
    main: FastMCP[Any] = FastMCP("main")
    main.mount(hr, namespace="hr")
    main.add_middleware(GuardMiddleware(NO_HR, principal=ALICE, audit=None, telemetry=recorder))
    return main


async def test_a_hashed_name_call_of_a_mounted_app_tool_keeps_its_namespace(
    recorder: Recorder,
) -> None:
    async with Client(composed(recorder)) as client:
        assert [t.name for t in await client.list_tools()] == []  # hidden: namespace hr
        listed = await client.call_tool("hr_export_salaries", {}, raise_on_error=False)
        assert listed.is_error and listed.content[0].text == "Unknown tool: 'hr_export_salaries'"
        hashed_name = hashed_backend_name("payroll", "export_salaries")
        hashed = await client.call_tool(hashed_name, {}, raise_on_error=False)
        # observed: the tool runs ("ALL SALARIES"), decided with namespace None
        assert hashed.is_error and hashed.content[0].text == f"Unknown tool: {hashed_name!r}"
    calls = [e for e in recorder.events if e.method == "tools/call"]
    assert [e.request.resource.namespace for e in calls] == ["hr", "hr"]
