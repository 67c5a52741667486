"""`visibility_scope` keys the lookup cache by FastMCP's own session scope: on in-memory
and stdio calls without a verified token it computes that key itself (FastMCP's way there
raises and catches an exception per call). Every transport and protocol era, asked from
inside a real request, must give FastMCP's key: were they to differ, one session's
enabled or hidden components could be resolved for another."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from fastmcp import Client
from fastmcp.client.transports import SSETransport, StdioTransport, StreamableHttpTransport
from fastmcp.server.middleware import Middleware
from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client
from mcp.server.auth.middleware.auth_context import auth_context_var
from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser
from mcp.server.auth.provider import AccessToken
from scope_server import build
from servers import REPO, serving_in_thread, stdio_command

SERVER = REPO / "tests" / "middleware" / "scope_server.py"


async def _asked(client: Client[Any]) -> dict[str, Any]:
    result = await client.call_tool("scope", {})
    answer: dict[str, Any] = json.loads(result.content[0].text)  # type: ignore[union-attr]
    return answer


async def test_in_memory_calls_get_fastmcps_key() -> None:
    async with Client(build()) as client:
        answer = await _asked(client)
    assert answer == {"ours": "process", "theirs": "process", "modern": True, "transport": "memory"}


class _Verified(Middleware):
    """Puts a verified token where the MCP SDK's bearer auth puts it."""

    async def on_call_tool(self, context: Any, call_next: Any) -> Any:
        token = AccessToken(token="t", client_id="app", scopes=[], subject="alice")
        reset = auth_context_var.set(AuthenticatedUser(token))
        try:
            return await call_next(context)
        finally:
            auth_context_var.reset(reset)


async def test_a_verified_token_gets_fastmcps_key_of_its_user() -> None:
    server = build()
    server.add_middleware(_Verified())
    async with Client(server) as client:
        answer = await _asked(client)
    assert answer["ours"] == answer["theirs"]
    assert answer["ours"].startswith("user:")


async def test_a_stdio_server_gets_fastmcps_key() -> None:
    command, args, env = stdio_command(SERVER)
    async with Client(StdioTransport(command=command, args=args, env=env)) as client:
        answer = await _asked(client)
    assert answer == {"ours": "process", "theirs": "process", "modern": True, "transport": "stdio"}


@asynccontextmanager
async def _over(kind: str) -> AsyncIterator[Client[Any]]:
    server = build()
    app = server.http_app(transport="sse") if kind == "sse" else server.http_app()
    with serving_in_thread(app) as port:
        url = f"http://127.0.0.1:{port}/{'sse' if kind == 'sse' else 'mcp'}"
        transport = SSETransport(url) if kind == "sse" else StreamableHttpTransport(url)
        async with Client(transport) as client:
            yield client


@pytest.mark.parametrize("kind", ["http", "sse"])
async def test_http_and_sse_calls_get_fastmcps_key(kind: str) -> None:
    async with _over(kind) as client:
        first, second = await _asked(client), await _asked(client)
    assert first["transport"] == kind
    assert first["ours"] == first["theirs"]
    assert second["ours"] == second["theirs"]


async def test_a_handshake_era_session_gets_fastmcps_key() -> None:
    server = build()
    with serving_in_thread(server.http_app()) as port:
        async with (
            streamable_http_client(f"http://127.0.0.1:{port}/mcp") as (read, write, *_),
            ClientSession(read, write) as session,
        ):
            await session.initialize()
            result = await session.call_tool("scope", {})
    answer = json.loads(result.content[0].text)  # type: ignore[union-attr]
    assert answer["ours"] == answer["theirs"]
    assert answer["modern"] is False
    assert answer["ours"] not in ("process", "None")  # the session's own id
