"""A stdio server has no HTTP app: its metrics are served on their own port."""

from __future__ import annotations

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
