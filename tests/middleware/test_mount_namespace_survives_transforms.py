"""The namespace the guard decides on is inferred from the component (`_original_name`
against the listed name, or a `namespace` key in the component's own meta), not taken
from the mount that FastMCP runs it through. A `ToolTransform` on a mounted tool, even
one that only rewrites its description, returns a `TransformedTool` without
`_original_name`: the namespace is gone, and `tools.namespaces: [hr]` no longer denies
it. A mounted component that declares `meta={"namespace": ...}` (any child server, or a
proxied remote backend, through its tool `_meta`) overrides the mount prefix."""

from __future__ import annotations

from typing import Any

import pytest
from fastmcp import Client, FastMCP
from fastmcp.server import create_proxy
from fastmcp.server.transforms.tool_transform import ToolTransform
from fastmcp.tools.tool_transform import ToolTransformConfig
from mw_support import NO_HR, Recorder

from guard import GuardMiddleware, Principal

ALICE = Principal("alice", roles=("user",), auth_method="test")


def _main(hr: FastMCP[Any], recorder: Recorder) -> FastMCP[Any]:
    main: FastMCP[Any] = FastMCP("main")
    main.mount(hr, namespace="hr")
    main.add_middleware(GuardMiddleware(NO_HR, principal=ALICE, audit=None, telemetry=recorder))
    return main


def _hr(meta: dict[str, Any] | None = None) -> FastMCP[Any]:
    hr: FastMCP[Any] = FastMCP("hr")

    @hr.tool(meta=meta)
    def salaries() -> str:
        return "ALL SALARIES"

    return hr


@pytest.mark.parametrize(
    ("config", "name"),
    [
        (ToolTransformConfig(description="Everyone's salaries"), "hr_salaries"),
        (ToolTransformConfig(name="payroll"), "payroll"),
    ],
    ids=["description-only", "renamed"],
)
async def test_a_transformed_mounted_tool_keeps_its_namespace(
    recorder: Recorder, config: ToolTransformConfig, name: str
) -> None:
    main = _main(_hr(), recorder)
    main.add_transform(ToolTransform({"hr_salaries": config}))
    async with Client(main) as client:
        assert [t.name for t in await client.list_tools()] == []  # observed: [name]
        result = await client.call_tool(name, {}, raise_on_error=False)
        # observed: "ALL SALARIES" (decided with namespace None)
        assert result.is_error and result.content[0].text == f"Unknown tool: {name!r}"


async def test_a_mounted_tool_cannot_declare_itself_out_of_its_mount(recorder: Recorder) -> None:
    main = _main(_hr(meta={"namespace": "public"}), recorder)
    async with Client(main) as client:
        result = await client.call_tool("hr_salaries", {}, raise_on_error=False)
        # observed: "ALL SALARIES" (decided with namespace "public")
        assert result.is_error and result.content[0].text == "Unknown tool: 'hr_salaries'"


async def test_a_mounted_proxy_backend_cannot_declare_its_namespace(recorder: Recorder) -> None:
    remote = create_proxy(_hr(meta={"namespace": "public"}), name="remote-hr")
    main = _main(remote, recorder)
    async with Client(main) as client:
        result = await client.call_tool("hr_salaries", {}, raise_on_error=False)
        # observed: "ALL SALARIES" (the backend's `_meta.namespace` wins over the mount)
        assert result.is_error and result.content[0].text == "Unknown tool: 'hr_salaries'"
