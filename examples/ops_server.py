"""A guarded weather server with everything an operator scrapes: the one `ops/compose.yaml`
runs and the Prometheus tests put under traffic.

- `/mcp`: MCP over streamable HTTP, API keys in `X-API-Key` (`user-key`, `admin-key`);
- `/metrics`: Prometheus metrics (bearer-protected when `METRICS_TOKEN` is set);
- spans and decision log records exported over OTLP/HTTP when `OTEL_EXPORTER_OTLP_ENDPOINT`
  is set.

Run: `python examples/ops_server.py --transport http --port 8000`
(stdio: `--transport stdio --metrics-port 9464` serves metrics on their own port).
"""

from __future__ import annotations

import argparse
import os

from fastmcp import FastMCP

from guard import Principal, create_api_key_middleware
from guard.middleware import DEFAULT_AUDIT
from guard.telemetry import GuardTelemetry, configure, mount_metrics, start_metrics_server

POLICY = {
    "name": "weather",
    "version": "1.0",
    "default_effect": "deny",
    "rules": [
        {
            "name": "admins-do-anything",
            "effect": "allow",
            "agents": {"roles": ["admin"]},
            "tools": {"patterns": ["*"]},
            "actions": ["list", "call"],
        },
        {
            "name": "users-read-weather",
            "effect": "allow",
            "agents": {"roles": ["user"]},
            "tools": {"names": ["get_weather", "list_cities"]},
            "actions": ["list", "call"],
        },
    ],
}

mcp = FastMCP("weather")


@mcp.tool
def get_weather(city: str) -> str:
    """Today's weather in `city`."""
    return f"Sunny in {city}"


@mcp.tool
def list_cities() -> list[str]:
    """Cities with a forecast."""
    return ["Lisbon", "Oslo"]


@mcp.tool
def delete_city(city: str) -> str:
    """Remove a city (admins only)."""
    return f"deleted {city}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--transport", default="http", choices=["stdio", "http", "sse"])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--metrics-port", type=int, default=9464, help="stdio only")
    opts, _ = parser.parse_known_args()

    exporting = bool(os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT"))
    if exporting:  # spans, and decision records as OTLP logs, to the collector
        configure(service_name=os.environ.get("OTEL_SERVICE_NAME", "weather-mcp"), logs=True)
    telemetry = GuardTelemetry(decision_logs=exporting)  # metrics on the global registry
    guard = create_api_key_middleware(
        policies=POLICY,
        api_key_roles={
            os.environ.get("USER_API_KEY", "user-key"): {"user_id": "ursula", "roles": ["user"]},
            os.environ.get("ADMIN_API_KEY", "admin-key"): {"user_id": "ada", "roles": ["admin"]},
        },
        # records only where MCP_GUARD_AUDIT asks, read by the guard (`off`, a leading `~`)
        audit=DEFAULT_AUDIT if os.environ.get("MCP_GUARD_AUDIT") else None,
        telemetry=telemetry,
        # stdio carries no headers: the local operator is a plain user
        principal=Principal("local-operator", ("user",), auth_method="stdio"),
    )
    mcp.add_middleware(guard)

    if opts.transport == "stdio":
        start_metrics_server(opts.metrics_port, opts.host)
        mcp.run(transport="stdio", show_banner=False)
        return
    mount_metrics(mcp, token=os.environ.get("METRICS_TOKEN") or None)
    mcp.run(
        transport=opts.transport,
        host=opts.host,
        port=opts.port,
        show_banner=False,
        log_level="warning",
    )


if __name__ == "__main__":
    main()
