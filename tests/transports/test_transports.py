"""The guard over real transports: stdio, streamable HTTP and SSE, each driven by
fastmcp's `Client` and by the `mcp` SDK's `ClientSession`.

Identity comes from the `X-API-Key` header over HTTP and SSE, and from the fixed
`principal=` on stdio (role `user`): the guard checks stdio too, unlike FastMCP's own
`AuthMiddleware`.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from fastmcp import Client
from fastmcp.client.transports import SSETransport, StdioTransport, StreamableHttpTransport
from fastmcp.exceptions import ToolError
from mcp import ClientSession
from mcp.client.sse import sse_client
from mcp.client.stdio import StdioServerParameters, stdio_client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client
from mcp.shared.exceptions import MCPError
from servers import ServerProcess, running_server, stdio_command

SCRIPT = Path(__file__).with_name("guarded_server.py")
USER = {"X-API-Key": "user-key-123"}
ADMIN = {"X-API-Key": "admin-key-456"}


@pytest.fixture(scope="module")
def http_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    with running_server(SCRIPT, transport="http", cwd=tmp_path_factory.mktemp("http")) as srv:
        yield srv


@pytest.fixture(scope="module")
def sse_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    with running_server(SCRIPT, transport="sse", cwd=tmp_path_factory.mktemp("sse")) as srv:
        yield srv


def _fastmcp_client(transport: str, url: str, headers: dict[str, str]) -> Client[Any]:
    if transport == "sse":
        return Client(SSETransport(url, headers=headers))
    return Client(StreamableHttpTransport(url, headers=headers))


@asynccontextmanager
async def _sdk_session(
    transport: str, url: str, headers: dict[str, str]
) -> AsyncIterator[ClientSession]:
    if transport == "sse":
        streams = sse_client(url, headers=headers)
    else:
        streams = streamable_http_client(url, http_client=create_mcp_http_client(headers=headers))
    async with streams as (read, write), ClientSession(read, write) as session:
        await session.initialize()
        yield session


def _url(request: pytest.FixtureRequest, transport: str) -> str:
    server: ServerProcess = request.getfixturevalue(f"{transport}_server")
    return server.url


@pytest.mark.parametrize("transport", ["http", "sse"])
async def test_fastmcp_client_user_sees_and_calls_only_allowed(
    transport: str, request: pytest.FixtureRequest
) -> None:
    async with _fastmcp_client(transport, _url(request, transport), USER) as client:
        assert [t.name for t in await client.list_tools()] == ["echo"]
        assert (await client.call_tool("echo", {"text": "hi"})).data == "echo: hi"
        with pytest.raises(ToolError, match="Unknown tool: 'drop_table'"):
            await client.call_tool("drop_table", {"name": "users"})
        assert [str(r.uri) for r in await client.list_resources()] == ["data://public"]
        assert (await client.read_resource("data://public"))[0].text == "public data"
        with pytest.raises(MCPError, match="Resource not found"):
            await client.read_resource("data://secret")
        assert [p.name for p in await client.list_prompts()] == ["greet"]
        with pytest.raises(MCPError, match="Unknown prompt: 'admin_prompt'"):
            await client.get_prompt("admin_prompt")
        await _completes_only_allowed(client.complete)


async def _completes_only_allowed(complete: Any) -> None:
    """A denied prompt completes exactly like one that does not exist, and the server's
    completion handler (which raises for it) never runs."""
    argument = {"name": "topic", "value": "a"}
    denied = await complete({"type": "ref/prompt", "name": "admin_prompt"}, argument)
    unknown = await complete({"type": "ref/prompt", "name": "no_such_prompt"}, argument)
    allowed = await complete({"type": "ref/prompt", "name": "greet"}, argument)
    denied, unknown, allowed = (getattr(r, "completion", r) for r in (denied, unknown, allowed))
    assert denied == unknown and denied.values == []
    assert allowed.values == ["Ada", "Alan"]


@pytest.mark.parametrize("transport", ["http", "sse"])
async def test_fastmcp_client_admin_key_gets_admin_tools(
    transport: str, request: pytest.FixtureRequest
) -> None:
    async with _fastmcp_client(transport, _url(request, transport), ADMIN) as client:
        assert sorted(t.name for t in await client.list_tools()) == ["drop_table", "echo"]
        result = await client.call_tool("drop_table", {"name": "users"})
        assert result.data == "dropped users"


@pytest.mark.parametrize("transport", ["http", "sse"])
async def test_missing_or_wrong_key_is_denied_everything(
    transport: str, request: pytest.FixtureRequest
) -> None:
    for headers in ({}, {"X-API-Key": "not-a-key"}):
        async with _fastmcp_client(transport, _url(request, transport), headers) as client:
            assert await client.list_tools() == []
            with pytest.raises(ToolError, match="Unknown tool: 'echo'"):
                await client.call_tool("echo", {"text": "hi"})


@pytest.mark.parametrize("transport", ["http", "sse"])
async def test_mcp_sdk_session_user_and_admin(
    transport: str, request: pytest.FixtureRequest
) -> None:
    url = _url(request, transport)
    async with _sdk_session(transport, url, USER) as session:
        assert [t.name for t in (await session.list_tools()).tools] == ["echo"]
        ok = await session.call_tool("echo", {"text": "sdk"})
        assert not ok.is_error and ok.content[0].text == "echo: sdk"  # type: ignore[union-attr]
        denied = await session.call_tool("drop_table", {"name": "t"})
        assert denied.is_error
        assert denied.content[0].text == "Unknown tool: 'drop_table'"  # type: ignore[union-attr]
        await _completes_only_allowed(session.complete)
    async with _sdk_session(transport, url, ADMIN) as session:
        admin = await session.call_tool("drop_table", {"name": "t"})
        assert not admin.is_error


async def test_stdio_fastmcp_client_uses_the_fixed_principal() -> None:
    command, args, env = stdio_command(SCRIPT)
    async with Client(StdioTransport(command, args, env=env)) as client:
        # the stdio principal has role `user`: stdio is checked like any transport
        assert [t.name for t in await client.list_tools()] == ["echo"]
        assert (await client.call_tool("echo", {"text": "x"})).data == "echo: x"
        with pytest.raises(ToolError, match="Unknown tool: 'drop_table'"):
            await client.call_tool("drop_table", {"name": "users"})


async def test_stdio_mcp_sdk_session() -> None:
    command, args, env = stdio_command(SCRIPT)
    params = StdioServerParameters(command=command, args=args, env=env)
    async with stdio_client(params) as (read, write), ClientSession(read, write) as session:
        await session.initialize()
        assert [t.name for t in (await session.list_tools()).tools] == ["echo"]
        denied = await session.call_tool("drop_table", {"name": "t"})
        assert denied.is_error
        assert [p.name for p in (await session.list_prompts()).prompts] == ["greet"]
        await _completes_only_allowed(session.complete)


@pytest.mark.parametrize("transport", ["http", "sse"])
async def test_records_name_the_transport_session_and_caller(
    transport: str, tmp_path: Path
) -> None:
    from guard.audit import open_store

    store = tmp_path / "audit"
    with running_server(
        SCRIPT, transport=transport, cwd=tmp_path, env={"MCP_GUARD_AUDIT": str(store)}
    ) as srv:
        async with _fastmcp_client(transport, srv.url, USER) as client:
            await client.call_tool("echo", {"text": "hi"})
        async with _sdk_session(transport, srv.url, {"X-API-Key": "wrong"}) as session:
            await session.call_tool("echo", {"text": "hi"})
    # stopping the server (SIGTERM) flushed its records
    with open_store(store) as db:
        rows = db.sql(
            "SELECT transport, session_id, user_id, auth_method, allowed, reason, status"
            " FROM decision_log WHERE method = 'tools/call' ORDER BY ts"
        ).fetchall()
    assert [(r[0], r[2], r[3], r[4], r[5], r[6]) for r in rows] == [
        (transport, "alice", "api_key", True, "rule", "ok"),
        (transport, None, "api_key", False, "invalid_api_key", None),
    ]
    # fastmcp's Client speaks 2026-07-28 over streamable HTTP, which has no session: FastMCP
    # would make up a new id per request, so none is recorded; over SSE, and for the SDK's
    # handshake-era session, each record names the session the server negotiated
    fastmcp_session, sdk_session = (r[1] for r in rows)
    assert (fastmcp_session is None) == (transport == "http")
    assert sdk_session and re.fullmatch(r"[0-9a-f-]{32,36}", sdk_session)
