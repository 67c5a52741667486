"""mcp-auth-guard's page, run for real: its server snippets (with `guard` imports) over
streamable HTTP, its clients rewritten to FastMCP 4's client API.

On FastMCP 4, `Client({"mcpServers": {...}})` with one server takes the tool name alone:
`call_tool("safe_tool", ...)`, not the page's `call_tool("my_service", "safe_tool", ...)`.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jwt
import pytest
from fastmcp import Client
from fastmcp.exceptions import ToolError
from seed_page import SEED_POLICY_FILE
from servers import ServerProcess, running_server

HERE = Path(__file__).resolve().parent
JWT_SECRET = "your-secret-key-that-is-at-least-32-bytes-long"


def _client(url: str, headers: dict[str, str]) -> Client[Any]:
    return Client({"mcpServers": {"my_service": {"url": url, "headers": headers}}})


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("seed")
    shutil.copy(SEED_POLICY_FILE, path / "policies.yaml")
    shutil.copy(HERE / "database_policies.yaml", path / "database_policies.yaml")
    return path


@pytest.fixture(scope="module")
def api_key_server(workdir: Path) -> Iterator[ServerProcess]:
    with running_server(
        HERE / "seed_server.py", cwd=workdir, env={"MCP_GUARD_AUDIT": "off"}
    ) as srv:
        yield srv


async def test_page_user_client(api_key_server: ServerProcess) -> None:
    client = _client(api_key_server.url, {"X-API-Key": "user-key-123"})
    async with client:
        # This works - user can access safe_tool
        result = await client.call_tool("safe_tool", {"data": "test"})
        assert result.data == "Safe processing: test"
        # This would fail - user cannot access sensitive_operation
        with pytest.raises(ToolError, match="Unknown tool"):
            await client.call_tool("sensitive_operation", {"data": "test"})
        assert [t.name for t in await client.list_tools()] == ["safe_tool"]


async def test_page_admin_client(api_key_server: ServerProcess) -> None:
    admin_client = _client(api_key_server.url, {"X-API-Key": "admin-key-456"})
    async with admin_client:
        # Admin can access any tool
        result = await admin_client.call_tool("sensitive_operation", {"data": "admin"})
        assert result.data == "Sensitive processing: admin"


async def test_page_jwt_middleware_over_http(workdir: Path) -> None:
    # mcp-auth-guard 1.0.0 never sees the bearer token on FastMCP 4 (it reads headers
    # the default way, which strips `authorization`); the guard must.
    now = int(time.time())
    claims = {"sub": "alice", "role": "admin", "roles": ["admin"], "iat": now, "exp": now + 600}
    token = jwt.encode(claims, JWT_SECRET, algorithm="HS256")
    with running_server(
        HERE / "seed_server.py", cwd=workdir, args=["--auth", "jwt"], env={"MCP_GUARD_AUDIT": "off"}
    ) as srv:
        async with _client(srv.url, {"Authorization": f"Bearer {token}"}) as client:
            result = await client.call_tool("sensitive_operation", {"data": "jwt"})
            assert result.data == "Sensitive processing: jwt"
        async with _client(srv.url, {"Authorization": "Bearer not-a-token"}) as client:
            assert await client.list_tools() == []


async def test_page_header_middleware_over_http(workdir: Path) -> None:
    with running_server(
        HERE / "seed_server.py",
        cwd=workdir,
        args=["--auth", "header"],
        env={"MCP_GUARD_AUDIT": "off"},
    ) as srv:
        headers = {"X-User-Id": "bob", "X-User-Roles": "user"}
        async with _client(srv.url, headers) as client:
            assert [t.name for t in await client.list_tools()] == ["safe_tool"]
            with pytest.raises(ToolError, match="Unknown tool"):
                await client.call_tool("sensitive_operation", {"data": "x"})


async def test_page_proxy_snippet(workdir: Path) -> None:
    with running_server(
        HERE / "seed_proxy_server.py", cwd=workdir, env={"MCP_GUARD_AUDIT": "off"}
    ) as srv:
        async with _client(srv.url, {"X-API-Key": "read-only-key-123"}) as reader:
            assert [t.name for t in await reader.list_tools()] == ["read_query"]
            ok = await reader.call_tool("read_query", {"query": "SELECT * FROM users"})
            assert ok.data == "rows for SELECT * FROM users"
            with pytest.raises(ToolError, match="Unknown tool"):
                await reader.call_tool("read_query", {"query": "DROP TABLE users"})
            with pytest.raises(ToolError, match="Unknown tool"):
                await reader.call_tool("write_query", {"query": "DELETE FROM users"})
        async with _client(srv.url, {"X-API-Key": "admin-key-456"}) as admin:
            done = await admin.call_tool("write_query", {"query": "DELETE FROM users"})
            assert done.data == "changed by DELETE FROM users"
