"""The `mcp-session-id` header is the client's text on FastMCP 4's default protocol
(2026-07-28: every request is its own connection, FastMCP takes the session id from the
request header unchecked). The guard puts it verbatim on its span (`mcp.session.id`) and
in its decision log records, while the JSON-RPC request id, just as client-chosen, is
redacted and bounded."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastmcp import FastMCP
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client import CollectorRegistry
from servers import raw_tool_call, serving_in_thread

from guard import GuardMiddleware, Principal
from guard.telemetry import GuardTelemetry

SECRET = "Bearer sk-live-0123456789abcdefABCDEF"


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


def test_client_chosen_session_id_never_reaches_the_guard_span_verbatim(
    http_server: str, spans: InMemorySpanExporter
) -> None:
    response = raw_tool_call(http_server, "echo", {"mcp-session-id": SECRET})
    assert response.status_code == 200, response.text
    ours = [s for s in spans.get_finished_spans() if s.name == "authorize echo"]
    assert ours, [s.name for s in spans.get_finished_spans()]
    shown = repr([dict(s.attributes or {}) for s in ours])
    assert "sk-live-0123456789abcdefABCDEF" not in shown, shown


def test_client_chosen_session_id_is_bounded_on_the_guard_span(
    http_server: str, spans: InMemorySpanExporter
) -> None:
    response = raw_tool_call(http_server, "echo", {"mcp-session-id": "s" * 20_000})
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
    response = raw_tool_call(http_server, "echo", request_id="7" * 5000)
    assert response.status_code == 200, response.text
    (ours,) = [s for s in spans.get_finished_spans() if s.name == "authorize echo"]
    assert len(str((ours.attributes or {})["jsonrpc.request.id"])) <= 256
