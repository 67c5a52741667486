"""The session a record names is one the transport checked, never a client's say-so.

A caller that copies another caller's `mcp-session-id` header into its own requests (on
2026-07-28, where no session stands behind the header, or on SSE, where FastMCP keeps
the first such header for the connection) must not have its decisions filed, and decided
by `request.context.session_id` conditions, under that other caller's session.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastmcp import FastMCP
from mcp import ClientSession
from mcp.client.sse import sse_client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client
from mw_support import Recorder
from servers import raw_tool_call, serving_in_thread

from guard import GuardMiddleware, Principal

POLICY = {"name": "p", "rules": [{"name": "r", "effect": "allow", "tools": {"names": ["echo"]}}]}


def _serve(**app: Any) -> Iterator[tuple[str, Recorder]]:
    mcp = FastMCP("sess")

    @mcp.tool
    def echo(text: str) -> str:
        return text

    recorder = Recorder()
    guard = GuardMiddleware(
        POLICY, principal=Principal("alice", ("user",)), audit=None, telemetry=recorder
    )
    mcp.add_middleware(guard)
    with serving_in_thread(mcp.http_app(**app)) as port:
        path = "/sse" if app.get("transport") == "sse" else "/mcp"
        yield f"http://127.0.0.1:{port}{path}", recorder
    guard.close()


@pytest.fixture
def http_server() -> Iterator[tuple[str, Recorder]]:
    yield from _serve()


@pytest.fixture
def stateless_server() -> Iterator[tuple[str, Recorder]]:
    yield from _serve(stateless_http=True)


@pytest.fixture
def sse_server() -> Iterator[tuple[str, Recorder]]:
    yield from _serve(transport="sse")


def _post(url: str, version: str, headers: dict[str, str], request_id: int = 1) -> None:
    response = raw_tool_call(url, "echo", headers, request_id=request_id, version=version)
    assert response.status_code == 200, response.text


def _sessions(recorder: Recorder) -> list[Any]:
    events = [e for e in recorder.events if e.method == "tools/call"]
    assert all(e.request.context["session_id"] == e.session_id for e in events)
    return [e.session_id for e in events]


async def test_a_copied_header_does_not_join_a_streamable_http_session(
    http_server: tuple[str, Recorder],
) -> None:
    url, recorder = http_server
    http = create_mcp_http_client()
    async with streamable_http_client(url, http_client=http) as (r, w), ClientSession(r, w) as s:
        await s.initialize()
        await s.call_tool("echo", {"text": "a"})
        [victim] = _sessions(recorder)
        assert victim  # the session the handshake negotiated
        _post(url, "2026-07-28", {"mcp-session-id": victim})  # another caller, same header
    assert _sessions(recorder) == [victim, None]


async def test_a_copied_header_does_not_join_an_sse_session(
    sse_server: tuple[str, Recorder],
) -> None:
    url, recorder = sse_server

    async def two_calls(headers: dict[str, str]) -> list[Any]:
        async with sse_client(url, headers=headers) as (r, w), ClientSession(r, w) as s:
            await s.initialize()
            await s.call_tool("echo", {"text": "a"})
            await s.call_tool("echo", {"text": "b"})
        return _sessions(recorder)[-2:]

    victim = await two_calls({})
    assert victim[0] and victim[0] == victim[1]  # one SSE session, one id
    other = await two_calls({"mcp-session-id": victim[0]})
    assert other[0] and other[0] == other[1]
    assert other[0] != victim[0]


def test_stateless_http_requests_have_no_session(
    stateless_server: tuple[str, Recorder],
) -> None:
    url, recorder = stateless_server
    _post(url, "2025-11-25", {}, 1)
    _post(url, "2025-11-25", {}, 2)  # FastMCP would make up a new id for each
    _post(url, "2025-11-25", {"mcp-session-id": "someone-elses"}, 3)
    assert _sessions(recorder) == [None, None, None]
