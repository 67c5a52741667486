"""A guarded FastMCP server over real HTTP: /metrics (protected, negotiated) and exemplars
whose trace ids are the decision spans captured in this same test."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from fastmcp import Client, FastMCP
from opentelemetry.trace import SpanKind
from prometheus_client import CollectorRegistry
from servers import serving_in_thread

from guard import create_api_key_middleware
from guard.telemetry import GuardTelemetry, mount_metrics, start_metrics_server

POLICY = {
    "name": "weather",
    "version": "2.1",
    "default_effect": "deny",
    "rules": [
        {
            "name": "users-weather",
            "effect": "allow",
            "agents": {"roles": ["user"]},
            "tools": {"names": ["get_weather"]},
            "actions": ["list", "call"],
        }
    ],
}
TOKEN = "scrape-token-123"
OPENMETRICS = "application/openmetrics-text; version=1.0.0"


@pytest.fixture
def served(registry: CollectorRegistry) -> Iterator[tuple[str, GuardTelemetry]]:
    telemetry = GuardTelemetry(registry=registry)
    mcp = FastMCP("weather")

    @mcp.tool
    def get_weather(city: str) -> str:
        return f"Sunny in {city}"

    @mcp.tool
    def delete_city(city: str) -> str:
        return city

    guard = create_api_key_middleware(
        policies=POLICY,
        api_key_roles={"user-key": {"user_id": "ursula", "roles": ["user"]}},
        audit=None,
        telemetry=telemetry,
    )
    mcp.add_middleware(guard)
    mount_metrics(mcp, registry=registry, token=TOKEN)
    with serving_in_thread(mcp.http_app()) as port:
        yield f"http://127.0.0.1:{port}", telemetry


async def _traffic(base: str) -> None:
    def client(key: str) -> Client[Any]:
        return Client({"mcpServers": {"s": {"url": f"{base}/mcp", "headers": {"X-API-Key": key}}}})

    async with client("user-key") as c:
        assert [t.name for t in await c.list_tools()] == ["get_weather"]
        await c.call_tool("get_weather", {"city": "Oslo"})
        with pytest.raises(Exception, match="delete_city"):
            await c.call_tool("delete_city", {"city": "Oslo"})
    async with client("wrong-key") as c:
        with pytest.raises(Exception, match="get_weather"):
            await c.call_tool("get_weather", {"city": "Oslo"})


async def test_metrics_route_is_protected_and_serves_exemplars_matching_spans(
    served: tuple[str, GuardTelemetry], spans: Any
) -> None:
    base, _ = served
    await _traffic(base)
    async with httpx.AsyncClient() as http:
        assert (await http.get(f"{base}/metrics")).status_code == 401
        wrong = await http.get(f"{base}/metrics", headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 401 and TOKEN not in wrong.text
        auth = {"Authorization": f"Bearer {TOKEN}"}
        om = await http.get(f"{base}/metrics", headers={**auth, "Accept": OPENMETRICS})
        text = await http.get(f"{base}/metrics", headers={**auth, "Accept": "text/plain"})
    assert om.status_code == 200 and om.headers["content-type"].startswith(
        "application/openmetrics-text"
    )
    assert om.text.rstrip().endswith("# EOF")
    assert text.status_code == 200 and text.headers["content-type"].startswith("text/plain")
    assert "# {" not in text.text  # the classic format carries no exemplars

    body = om.text
    series = r'mcpguard_decisions_total\{[^}]*decision="%s"[^}]*resource="%s"'
    assert re.search(series % ("allow", "get_weather"), body)
    assert re.search(series % ("deny", "delete_city"), body)
    assert 'mcpguard_auth_failures_total{method="api_key",reason="invalid_api_key"} 1.0' in body
    assert 'mcpguard_policy_info{hash="' in body and 'version="weather@2.1"' in body
    assert "ursula" not in body and "user-key" not in body

    exemplar_ids = set(re.findall(r'# \{trace_id="([0-9a-f]{32})"\}', body))
    finished = spans.get_finished_spans()
    decision_spans = [s for s in finished if s.name.startswith("authorize ")]
    assert {s.name for s in decision_spans} >= {"authorize get_weather", "authorize delete_city"}
    span_trace_ids = {format(s.context.trace_id, "032x") for s in decision_spans}
    assert exemplar_ids and exemplar_ids <= span_trace_ids
    by_id = {s.context.span_id: s for s in finished}
    allowed = next(s for s in decision_spans if s.name == "authorize get_weather")
    parent = by_id[allowed.parent.span_id]  # type: ignore[union-attr]
    assert parent.kind is SpanKind.SERVER and parent.name == "tools/call get_weather"
    assert dict(allowed.attributes or {})["enduser.id"] == "ursula"


def test_mount_metrics_rejects_a_blank_token() -> None:
    with pytest.raises(ValueError, match="token"):
        mount_metrics(FastMCP("x"), token="  ")


def test_metrics_on_their_own_port(registry: CollectorRegistry) -> None:
    telemetry = GuardTelemetry(registry=registry)
    telemetry.auth_failure("api_key", "missing_credentials")
    server = start_metrics_server(0, registry=registry)
    try:
        url = f"http://127.0.0.1:{server.server_port}/metrics"
        body = httpx.get(url, headers={"Accept": OPENMETRICS}).text
    finally:
        server.shutdown()
        server.server_close()
    expected = 'mcpguard_auth_failures_total{method="api_key",reason="missing_credentials"} 1.0'
    assert expected in body


async def test_a_malformed_accept_header_gets_the_classic_format(
    served: tuple[str, GuardTelemetry],
) -> None:
    """prometheus-client's negotiation raises on an OpenMetrics version that is not a
    number: /metrics answered any scraper (or prober) sending one with a 500 and a
    traceback in the server's log."""
    base, _ = served
    headers = {"Authorization": f"Bearer {TOKEN}", "Accept": OPENMETRICS.replace("1.0.0", "x")}
    async with httpx.AsyncClient() as http:
        response = await http.get(f"{base}/metrics", headers=headers)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    assert "mcpguard_decisions_total" in response.text


def test_a_malformed_accept_header_on_the_metrics_port_gets_the_classic_format(
    registry: CollectorRegistry,
) -> None:
    """The same scraper against `start_metrics_server` (stdio servers): prometheus-client's
    own app raised there too, answering 500."""
    GuardTelemetry(registry=registry).auth_failure("api_key", "missing_credentials")
    server = start_metrics_server(0, registry=registry)
    try:
        url = f"http://127.0.0.1:{server.server_port}/metrics"
        response = httpx.get(url, headers={"Accept": OPENMETRICS.replace("1.0.0", "x")})
        negotiated = httpx.get(url, headers={"Accept": OPENMETRICS})
    finally:
        server.shutdown()
        server.server_close()
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    assert "mcpguard_auth_failures_total" in response.text
    assert negotiated.headers["content-type"].startswith("application/openmetrics-text")
