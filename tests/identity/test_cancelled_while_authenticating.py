"""A request cancelled while its caller is being authenticated (the JWT authenticator
fetching a JWKS that is slow to answer, the client gives up) is still recorded, counted
and traced, as a denial with reason `cancelled`; the cancellation itself goes on, and the
server keeps serving. Found in review: `CancelledError` left the guard with no decision
record, span or metric, though every attempt must be observed (fail closed)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest
from fastmcp import Client, FastMCP
from fastmcp.client.transports import StreamableHttpTransport
from identity_kit import JWKSServer, KeyPair, claims, mint, records
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client import CollectorRegistry
from servers import serving_in_thread

from guard import GuardMiddleware
from guard.identity import JWTAuthenticator
from guard.telemetry import GuardTelemetry

POLICY = {"name": "p", "rules": [{"name": "users", "effect": "allow", "agents": {"roles": ["user"]},
                                  "tools": {"names": ["echo"]}, "actions": ["call"]}]}  # fmt: skip


_COLUMNS = "user_id, authenticated, auth_method, allowed, reason, errors, resource, trace_id"


async def test_a_call_cancelled_while_its_jwks_is_fetched_is_recorded_and_still_cancelled(
    tmp_path: Path, jwks_server: JWKSServer, rsa_key: KeyPair
) -> None:
    jwks_server.keys = [rsa_key.jwk]
    jwks_server.delay = 1.5  # the identity provider is slow: the client gives up first
    registry = CollectorRegistry()
    spans = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(spans))
    store = tmp_path / "audit.duckdb"
    auth = JWTAuthenticator(jwks_url=jwks_server.url, audience="mcp", jwks_timeout=10)
    guard = GuardMiddleware(
        POLICY, authenticator=auth, audit=str(store),
        telemetry=GuardTelemetry(registry=registry, tracer_provider=provider),
    )  # fmt: skip
    app: FastMCP[Any] = FastMCP("slow-idp")

    @app.tool
    def echo(text: str) -> str:
        return text

    app.add_middleware(guard)
    token = mint(claims(aud="mcp"), rsa_key.private, rsa_key.alg, {"kid": rsa_key.kid})
    with serving_in_thread(app.http_app()) as port:
        transport = StreamableHttpTransport(
            f"http://127.0.0.1:{port}/mcp", headers={"Authorization": f"Bearer {token}"}
        )
        async with Client(transport) as client:
            call = asyncio.create_task(client.call_tool("echo", {"text": "first"}))
            deadline = time.monotonic() + 10
            while jwks_server.hits == 0 and time.monotonic() < deadline:
                await asyncio.sleep(0.01)  # the guard is fetching the keys now
            assert jwks_server.hits == 1
            call.cancel()
            with pytest.raises(asyncio.CancelledError):
                await call
            cancelled = await asyncio.to_thread(records, store, 1, _COLUMNS)
            # the server let go of the cancelled request and serves the next one (the fetch
            # went on without its caller: its keys are there)
            result = await asyncio.wait_for(client.call_tool("echo", {"text": "second"}), 20)
            assert result.data == "second"
        rows = await asyncio.to_thread(records, store, 2, _COLUMNS)
    guard.close()
    assert cancelled[:1] == rows[:1]
    first, second = rows
    # who: unknown, as for a caller whose authentication failed
    assert first[:6] == (None, False, "jwt", False, "cancelled", ["cancelled while authenticating"])
    assert first[6] == "echo"
    assert second[:5] == ("alice", True, "jwt", True, "rule")
    denied = registry.get_sample_value("mcpguard_decisions_total", {
        "decision": "deny", "reason": "cancelled", "kind": "tool", "action": "call",
        "resource": "(unknown)", "rule": "", "policy": ""})  # fmt: skip
    assert denied == 1.0
    # not an authentication failure: the caller left before its credential was judged
    assert registry.get_sample_value("mcpguard_auth_failures_total", {
        "method": "jwt", "reason": "cancelled"}) is None  # fmt: skip
    traced = [s for s in spans.get_finished_spans() if s.name.startswith("authorize")]
    assert [s.attributes["mcp_guard.reason"] for s in traced] == ["cancelled", "rule"]
    assert traced[0].attributes["mcp_guard.decision"] == "deny"
    assert f"{traced[0].context.trace_id:032x}" == first[7]
