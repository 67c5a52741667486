"""Subprocess for test_configure: configure() + a FastMCP server span + a guard decision.

Run with the receiver's base URL; exits after flushing (the global tracer provider is
process-wide, so this stays out of the test process).
"""

from __future__ import annotations

import asyncio
import sys

from fastmcp import Client, FastMCP

from guard import GuardMiddleware
from guard.policy.model import Principal
from guard.telemetry import GuardTelemetry, configure

UPSTREAM_KEY = "sk-live-" + "0123456789abcdef" * 2  # what test_configure looks for
CALLER_TOKEN = "ghp_" + "Z" * 36

POLICY = {
    "name": "otlp",
    "default_effect": "deny",
    "rules": [
        {
            "name": "users-weather",
            "effect": "allow",
            "agents": {"roles": ["user"]},
            "tools": {"names": ["get_weather", "get_forecast"]},
            "actions": ["list", "call"],
        },
        {
            "name": "users-vault",
            "effect": "allow",
            "agents": {"roles": ["user"]},
            "resources": {"patterns": ["vault://*"]},
            "actions": ["read"],
        },
    ],
}


async def main(endpoint: str) -> None:
    from prometheus_client import CollectorRegistry

    provider = configure(service_name="otlp-test", otlp_endpoint=endpoint, logs=True)
    mcp = FastMCP("otlp")

    @mcp.tool
    def get_weather(city: str) -> str:
        return f"Sunny in {city}"

    @mcp.tool
    def delete_city(city: str) -> str:
        return city

    @mcp.tool
    def get_forecast(city: str) -> str:  # fails quoting the key it was given
        raise ValueError(f"upstream refused key {UPSTREAM_KEY} for {city}")

    @mcp.resource("vault://{name}")
    def vault(name: str) -> str:
        return name

    mcp.add_middleware(
        GuardMiddleware(
            POLICY,
            principal=Principal("alice", ("user",)),
            audit=None,
            telemetry=GuardTelemetry(registry=CollectorRegistry(), decision_logs=True),
        )
    )
    async with Client(mcp) as client:
        await client.call_tool("get_weather", {"city": "Oslo"})
        try:
            await client.call_tool("delete_city", {"city": "Oslo"})
        except Exception as exc:
            print("denied:", type(exc).__name__)
        # what callers send and tools raise lands in FastMCP's own spans of these requests
        for attempt in (
            client.call_tool("get_forecast", {"city": "Oslo"}),
            client.call_tool(CALLER_TOKEN, {}),
            client.read_resource(f"vault://db?token={CALLER_TOKEN[4:]}"),
        ):
            try:
                await attempt
            except Exception as exc:
                print("failed:", type(exc).__name__)
    provider.shutdown()  # flushes the batch processors
    from opentelemetry import _logs

    _logs.get_logger_provider().shutdown()  # type: ignore[attr-defined]


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))
