"""A read a proxy or a mount forwards through a template is decided on the template, but
the URI the backend receives is rebuilt from the template's decoded parameters
(`forward_uri`): `users://%61dmin/profile`, `users://admin/profile#x` and
`users://admin/profile?` all arrive as `users://admin/profile`, where the backend serves
its concrete resource `admin_profile`, which the policy denies (a direct read of that URI
is refused)."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

import pytest
from fastmcp import Client, FastMCP
from fastmcp.client.transports import StreamableHttpTransport
from fastmcp.server import create_proxy
from forwarding_backend import PROFILES_ONLY
from forwarding_backend import build as backend
from mcp.shared.exceptions import MCPError
from mw_support import Recorder
from servers import running_server

from guard import GuardMiddleware, Principal

ALICE = Principal("alice", roles=("user",), auth_method="test")


# what the caller sends; the backend receives `users://admin/profile` each time
DISGUISED = ["users://%61dmin/profile", "users://admin/profile#x", "users://admin/profile?"]


def _guarded(server: FastMCP[Any], recorder: Recorder) -> FastMCP[Any]:
    server.add_middleware(
        GuardMiddleware(PROFILES_ONLY, principal=ALICE, audit=None, telemetry=recorder)
    )
    return server


async def _assert_denied(client: Client[Any], prefix: str, disguised: str) -> None:
    assert (await client.read_resource(f"{prefix}bob/profile"))[0].text == "profile bob"
    with pytest.raises(MCPError, match="Resource not found"):
        await client.read_resource(f"{prefix}admin/profile")  # the denied resource: refused
    uri = disguised.replace("users://", prefix)
    try:
        text = (await client.read_resource(uri))[0].text
    except MCPError:
        return
    # found in review: "ADMIN SECRET PROFILE", the denied concrete resource's content
    assert text != "ADMIN SECRET PROFILE", f"{uri} read the denied resource"


@pytest.mark.parametrize("disguised", DISGUISED)
async def test_proxy_forwards_a_disguised_uri_to_a_denied_resource(
    recorder: Recorder, disguised: str
) -> None:
    proxy = _guarded(create_proxy(backend(), name="proxy"), recorder)
    async with Client(proxy) as client:
        await _assert_denied(client, "users://", disguised)


@pytest.mark.parametrize("disguised", DISGUISED)
async def test_mount_forwards_a_disguised_uri_to_a_denied_resource(
    recorder: Recorder, disguised: str
) -> None:
    main: FastMCP[Any] = FastMCP("main")
    main.mount(backend(), namespace="hr")
    async with Client(_guarded(main, recorder)) as client:
        await _assert_denied(client, "users://hr/", disguised)


@pytest.mark.parametrize("disguised", DISGUISED)
async def test_proxy_of_a_real_http_backend_forwards_a_disguised_uri(
    recorder: Recorder, tmp_path: Path, disguised: str
) -> None:
    script = Path(__file__).with_name("forwarding_backend.py")
    with running_server(script, transport="http", cwd=tmp_path) as srv:
        proxy = _guarded(create_proxy(StreamableHttpTransport(srv.url), name="proxy"), recorder)
        async with Client(proxy) as client:
            await _assert_denied(client, "users://", disguised)


@pytest.mark.parametrize("transport", ["http", "sse"])
async def test_end_to_end_over_real_transports(tmp_path: Path, transport: str) -> None:
    """Client -> guarded proxy (HTTP or SSE, API key) -> unguarded backend (HTTP)."""
    from fastmcp.client.transports import SSETransport

    here = Path(__file__).parent
    with contextlib.ExitStack() as servers:
        back = servers.enter_context(
            running_server(here / "forwarding_backend.py", transport="http", cwd=tmp_path)
        )
        front = servers.enter_context(
            running_server(
                here / "forwarding_proxy_server.py",
                transport=transport,
                cwd=tmp_path,
                env={"BACKEND_URL": back.url},
            )
        )
        headers = {"X-API-Key": "user-key-123"}
        link = (SSETransport if transport == "sse" else StreamableHttpTransport)(
            front.url, headers=headers
        )
        async with Client(link) as client:
            await _assert_denied(client, "users://", "users://%61dmin/profile")
