"""A guarded server mounted into an unguarded parent: what its guard denies must reach the
parent's caller exactly as a component neither server has, not as a failure of the
child's component (which names it, under its local name, with another error code)."""

from __future__ import annotations

from typing import Any

import pytest
from fastmcp import Client, FastMCP
from fastmcp.exceptions import ToolError
from mcp.shared.exceptions import MCPError
from mw_support import POLICY, demo_server

from guard import GuardMiddleware, Principal

ALICE = Principal("alice", roles=("user",))


def _parent(**kwargs: Any) -> FastMCP[Any]:
    child = demo_server("child")
    child.add_middleware(
        GuardMiddleware(POLICY, principal=ALICE, audit=None, telemetry=False, **kwargs)
    )
    parent: FastMCP[Any] = FastMCP("parent")
    parent.mount(child, namespace="ns")
    return parent


async def _tool_error(client: Client[Any], name: str) -> str:
    with pytest.raises(ToolError) as caught:
        await client.call_tool(name, {"name": "x"})
    return str(caught.value)


async def _read_error(client: Client[Any], uri: str) -> tuple[int, str]:
    with pytest.raises(MCPError) as caught:
        await client.read_resource(uri)
    return caught.value.error.code, caught.value.error.message


async def _prompt_error(client: Client[Any], name: str) -> tuple[int, str]:
    with pytest.raises(MCPError) as caught:
        await client.get_prompt(name, {"topic": "x"})
    return caught.value.error.code, caught.value.error.message


async def test_a_denial_behind_a_mount_answers_like_absence() -> None:
    async with Client(_parent()) as client:
        assert sorted(t.name for t in await client.list_tools()) == ["ns_echo", "ns_fail"]
        assert (await client.call_tool("ns_echo", {"text": "hi"})).data == "echo: hi"
        assert await _tool_error(client, "ns_drop_table") == "Unknown tool: 'ns_drop_table'"
        assert await _tool_error(client, "ns_nothing") == "Unknown tool: 'ns_nothing'"

        missing = await _read_error(client, "data://ns/nothing")
        assert missing == (-32602, "Resource not found: 'data://ns/nothing'")
        assert await _read_error(client, "data://ns/secret") == (
            -32602, "Resource not found: 'data://ns/secret'",
        )  # fmt: skip
        assert await _read_error(client, "users://ns/7/payroll") == (
            -32602, "Resource not found: 'users://ns/7/payroll'",
        )  # fmt: skip

        assert await _prompt_error(client, "ns_nothing") == (
            -32602, "Unknown prompt: 'ns_nothing'",
        )  # fmt: skip
        assert await _prompt_error(client, "ns_admin_prompt") == (
            -32602, "Unknown prompt: 'ns_admin_prompt'",
        )  # fmt: skip


async def test_an_explicit_denial_behind_a_mount_still_says_denied() -> None:
    async with Client(_parent(explicit_denials=True)) as client:
        assert "denied" in await _tool_error(client, "ns_drop_table")
