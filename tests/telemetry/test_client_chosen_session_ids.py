"""The `mcp-session-id` header is the client's text on FastMCP 4's default protocol
(2026-07-28: every request is its own connection, FastMCP takes the session id from the
request header unchecked). The guard puts it verbatim on its span (`mcp.session.id`) and
in its decision log records, while the JSON-RPC request id, just as client-chosen, is
redacted and bounded."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from fastmcp import FastMCP
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client import CollectorRegistry
from servers import serving_in_thread

from guard import GuardMiddleware, Principal
from guard.telemetry import GuardTelemetry

SECRET = "Bearer sk-live-0123456789abcdefABCDEF"
PV = "2026-07-28"


@pytest.fixture
def http_server() -> Iterator[str]:
    mcp = FastMCP("sess")

    @mcp.tool
    def echo(text: str) -> str:
        return text

    mw = GuardMiddleware(
        {"name": "p", "rules": [{"name": "r", "effect": "allow", "tools": {"names": ["echo"]}}]},
        principal=Principal("alice", ("user",)),
        audit=None,
        telemetry=GuardTelemetry(registry=CollectorRegistry()),
    )
    mcp.add_middleware(mw)
    with serving_in_thread(mcp.http_app()) as port:
        yield f"http://127.0.0.1:{port}/mcp"
    mw.close()


def _call(url: str, headers: dict[str, str], request_id: Any = 1) -> httpx.Response:
    body = {
        "jsonrpc": "2.0", "id": request_id, "method": "tools/call",
        "params": {"name": "echo", "arguments": {"text": "y"},
                   "_meta": {"io.modelcontextprotocol/protocolVersion": PV,
                             "io.modelcontextprotocol/clientCapabilities": {}}},
    }  # fmt: skip
    base = {
        "accept": "application/json, text/event-stream", "content-type": "application/json",
        "mcp-protocol-version": PV, "mcp-method": "tools/call", "mcp-name": "echo",
    }  # fmt: skip
    return httpx.post(url, json=body, headers={**base, **headers}, timeout=20)


def test_client_chosen_session_id_never_reaches_the_guard_span_verbatim(
    http_server: str, spans: InMemorySpanExporter
) -> None:
    response = _call(http_server, {"mcp-session-id": SECRET})
    assert response.status_code == 200, response.text
    ours = [s for s in spans.get_finished_spans() if s.name == "authorize echo"]
    assert ours, [s.name for s in spans.get_finished_spans()]
    shown = repr([dict(s.attributes or {}) for s in ours])
    assert "sk-live-0123456789abcdefABCDEF" not in shown, shown


def test_client_chosen_session_id_is_bounded_on_the_guard_span(
    http_server: str, spans: InMemorySpanExporter
) -> None:
    response = _call(http_server, {"mcp-session-id": "s" * 20_000})
    assert response.status_code == 200, response.text
    (ours,) = [s for s in spans.get_finished_spans() if s.name == "authorize echo"]
    # the request id is cut at 256 characters (README); the session id is not cut at all
    assert len(str((ours.attributes or {}).get("mcp.session.id", ""))) <= 256


def test_a_digit_only_string_request_id_is_bounded_too(
    http_server: str, spans: InMemorySpanExporter
) -> None:
    """`_begin` skips redaction for ids where `str.isdigit()` holds, so a 5,000-digit string
    id (or Unicode digits) reaches the span whole, though README promises "one over 256
    characters by its length and digest"."""
    response = _call(http_server, {}, request_id="7" * 5000)
    assert response.status_code == 200, response.text
    (ours,) = [s for s in spans.get_finished_spans() if s.name == "authorize echo"]
    assert len(str((ours.attributes or {})["jsonrpc.request.id"])) <= 256
