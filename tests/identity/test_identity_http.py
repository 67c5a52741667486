"""End to end over real HTTP: a guarded FastMCP server in a subprocess on 127.0.0.1, real
clients (fastmcp `Client` and the `mcp` SDK's `ClientSession`), JWT and API-key callers
allowed and denied as the policy says, attacks denied and recorded with their reason, and
no credential in any log line of the server or the test process."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastmcp import Client
from fastmcp.exceptions import ToolError
from identity_kit import (
    KEEPER,
    KeyPair,
    b64url,
    call,
    claims,
    forge,
    leaks,
    masked,
    mint,
    records,
    remember,
)
from servers import ServerProcess, running_server

HERE = Path(__file__).resolve().parent
SECRET = remember("e2e-jwt-secret-" + "f00dfeed" * 6)
USER_KEY = remember("e2e-user-key-000111")
ADMIN_KEY = remember("e2e-admin-key-000222")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServerProcess, Path]]:
    work = tmp_path_factory.mktemp("identity-http")
    store = work / "audit.duckdb"
    keys = {
        USER_KEY: {"user_id": "bob", "roles": ["user"]},
        ADMIN_KEY: {"user_id": "root", "roles": ["admin"]},
    }
    env = {
        "GUARD_TEST_JWT_SECRET": SECRET,
        "GUARD_TEST_API_KEYS": json.dumps(keys),
        "MCP_GUARD_AUDIT": str(store),
    }
    with running_server(HERE / "identity_server.py", env=env, cwd=work) as srv:
        yield srv, store


def token(**extra: Any) -> str:
    return mint(claims(aud="mcp-e2e", **extra), SECRET)


async def test_jwt_and_api_key_callers_and_attacks(server: tuple[ServerProcess, Path]) -> None:
    srv, store = server
    url = srv.url
    unsigned_admin = forge({"alg": "none"}, claims(aud="mcp-e2e", roles=["admin"]))
    cases: list[tuple[dict[str, str], str, str]] = [
        # (headers, tool, expected outcome prefix)
        ({"Authorization": f"Bearer {token()}"}, "echo", "echo: hi"),
        ({"Authorization": f"Bearer {token()}"}, "drop_table", "denied"),
        ({"Authorization": f"Bearer {token(roles=['admin'])}"}, "drop_table", "dropped t"),
        ({"X-API-Key": USER_KEY}, "echo", "echo: hi"),
        ({"X-API-Key": USER_KEY}, "drop_table", "denied"),
        ({"X-API-Key": ADMIN_KEY}, "drop_table", "dropped t"),
        # attacks
        ({"Authorization": f"Bearer {unsigned_admin}"}, "drop_table", "denied"),
        ({"Authorization": f"Bearer {token(iat=1, exp=2)}"}, "echo", "denied"),
        ({"X-API-Key": remember("e2e-wrong-key-000333")}, "echo", "denied"),
        ({"Authorization": f"Bearer {ADMIN_KEY}"}, "drop_table", "denied"),
        ({"X-User-Id": "mallory", "X-User-Roles": "admin"}, "drop_table", "denied"),
        ({}, "echo", "denied"),
    ]
    for headers, tool, expected in cases:
        outcome = await call(url, headers, tool)
        assert outcome.startswith(expected), (headers.keys(), tool, outcome, records(store, 99))

    rows = records(store, len(cases))
    assert len(rows) == len(cases), rows
    got = [(r[0], r[1], r[3], r[4]) for r in rows]
    assert got[0] == ("alice", "jwt", True, "rule")
    assert got[1] == ("alice", "jwt", False, "default")
    assert got[3][:3] == ("bob", "api_key", True)
    assert got[5][:3] == ("root", "api_key", True)
    assert [g[3] for g in got[6:]] == [
        "disallowed_algorithm",
        "expired",
        "invalid_api_key",
        "malformed_token",  # an API key sent as a bearer token is not a JWT
        "untrusted_proxy",
        "missing_credentials",
    ]
    assert all(not g[2] for g in got[6:])
    # key_id is a fingerprint; no record column carries a credential
    flat = json.dumps([list(map(str, r)) for r in rows])
    assert not leaks(flat)
    assert rows[3][2] and len(rows[3][2]) == 12


async def test_mcp_sdk_client_with_api_key(server: tuple[ServerProcess, Path]) -> None:
    from mcp import ClientSession
    from mcp.client.streamable_http import create_mcp_http_client, streamable_http_client

    srv, _ = server
    http_client = create_mcp_http_client(headers={"X-API-Key": USER_KEY})
    streams = streamable_http_client(srv.url, http_client=http_client)
    async with streams as (r, w), ClientSession(r, w) as session:
        await session.initialize()
        listed = {t.name for t in (await session.list_tools()).tools}
        assert listed == {"echo"}  # the user may not even see drop_table
        result = await session.call_tool("echo", {"text": "sdk"})
        assert not result.isError and "echo: sdk" in str(result.content[0])


async def test_no_credential_in_any_log_line(server: tuple[ServerProcess, Path]) -> None:
    srv, _ = server
    # one more tampered token, then look at everything logged so far
    good = token()
    header, _, sig = good.split(".")
    tampered = remember(f"{header}.{b64url(json.dumps(claims(roles=['admin'])).encode())}.{sig}")
    assert (await call(srv.url, {"Authorization": f"Bearer {tampered}"}, "echo")).startswith(
        "denied"
    )
    time.sleep(0.3)  # let the server flush its stderr
    server_log = srv.output()
    assert "guard.identity" in server_log  # the server did log at DEBUG: the scan saw lines
    assert not leaks(server_log), [masked(f) for f in leaks(server_log)[:3]]
    assert not leaks(KEEPER.lines)


async def test_fastmcp_auth_provider_token_is_the_principal(
    rsa_key: KeyPair, tmp_path: Path
) -> None:
    env = {"GUARD_TEST_PUBLIC_KEY": rsa_key.public_pem.decode()}
    with running_server(HERE / "fastmcp_auth_server.py", env=env, cwd=tmp_path) as srv:

        def bearer_for(scope: str) -> dict[str, str]:
            payload = claims(aud="mcp-e2e", iss="https://idp.test", scope=scope, roles=None)
            return {"Authorization": f"Bearer {mint(payload, rsa_key.private, 'RS256')}"}

        # FastMCP verified the token; its scopes are the roles the policy sees
        assert await call(srv.url, bearer_for("user"), "echo") == "echo: hi"
        assert (await call(srv.url, bearer_for("user"), "drop_table")).startswith("denied")
        assert await call(srv.url, bearer_for("admin"), "drop_table") == "dropped t"
        time.sleep(0.3)
        log = srv.output()
    assert not leaks(log), [masked(f) for f in leaks(log)[:3]]


async def test_stdio_principal_comes_from_the_launcher(tmp_path: Path) -> None:
    from fastmcp.client.transports import StdioTransport
    from servers import stdio_command

    store = tmp_path / "audit.duckdb"
    command, args, env = stdio_command(
        HERE / "identity_server.py",
        env={
            "GUARD_TEST_AUTH": "stdio",
            "MCP_GUARD_USER": "dev",
            "MCP_GUARD_ROLES": "user",
            "MCP_GUARD_AUDIT": str(store),
        },
    )
    async with Client(StdioTransport(command, args, env=env, cwd=str(tmp_path))) as client:
        assert (await client.call_tool("echo", {"text": "hi"})).content[0].text == "echo: hi"  # type: ignore[union-attr]
        with pytest.raises(ToolError):
            await client.call_tool("drop_table", {"name": "t"})
    rows = records(store, 2)
    assert [(r[0], r[1], r[3]) for r in rows] == [("dev", "stdio", True), ("dev", "stdio", False)]
