"""A stdio server has no HTTP app: its metrics are served on their own port."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from fastmcp import Client
from fastmcp.client.transports import StdioTransport
from servers import REPO, free_port, stdio_command

SERVER = REPO / "examples" / "ops_server.py"


async def test_stdio_server_serves_metrics_on_its_own_port() -> None:
    port = free_port()
    command, args, env = stdio_command(SERVER, args=["--metrics-port", str(port)])
    transport = StdioTransport(command=command, args=args, env=env)
    async with Client(transport) as client:
        await client.call_tool("get_weather", {"city": "Oslo"})
        with pytest.raises(Exception, match="delete_city"):
            await client.call_tool("delete_city", {"city": "Oslo"})
        async with httpx.AsyncClient() as http:
            body = (
                await http.get(
                    f"http://127.0.0.1:{port}/metrics",
                    headers={"Accept": "application/openmetrics-text; version=1.0.0"},
                )
            ).text
    assert 'decision="allow"' in body and 'resource="get_weather"' in body
    assert 'decision="deny"' in body and 'resource="delete_city"' in body
    assert "local-operator" not in body


@pytest.mark.parametrize("setting", ["off", "~/ops-audit"])
async def test_ops_server_reads_mcp_guard_audit_as_the_guard_does(
    setting: str, tmp_path: Path
) -> None:
    """The README: `$MCP_GUARD_AUDIT` set to `off` switches records off, and a leading `~`
    is the home directory. The example passed the variable on as a path, so `off` made a
    store named `off` in the working directory, and `~/x` one under a directory named `~`."""
    home = tmp_path / "home"
    home.mkdir()
    command, args, env = stdio_command(
        SERVER, args=["--metrics-port", str(free_port())], env={"MCP_GUARD_AUDIT": setting}
    )
    env["HOME"] = str(home)
    transport = StdioTransport(command=command, args=args, env=env, cwd=str(tmp_path))
    async with Client(transport) as client:
        await client.call_tool("get_weather", {"city": "Oslo"})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["home"]
    if setting != "off":
        assert (home / "ops-audit" / "decisions").is_dir()
