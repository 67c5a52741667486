"""`ScrubbingSpanExporter` on the spans a real guarded FastMCP server makes."""

from __future__ import annotations

from typing import Any

import pytest
from fastmcp import Client, FastMCP
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client import CollectorRegistry

from guard import GuardMiddleware, Principal
from guard.telemetry import GuardTelemetry, ScrubbingSpanExporter

KEY = "sk-live-" + "9f8e7d6c5b4a" * 3


class Kept(InMemorySpanExporter):
    """Keeps what it is handed, as handed (the in-memory exporter's spans, by identity)."""

    def __init__(self) -> None:
        super().__init__()
        self.handed: list[ReadableSpan] = []

    def export(self, spans: Any) -> SpanExportResult:
        self.handed.extend(spans)
        return super().export(spans)


async def test_fastmcp_spans_lose_credentials_and_keep_the_rest(
    spans: InMemorySpanExporter,
) -> None:
    mcp = FastMCP("scrub")

    @mcp.tool
    def charge(amount: int) -> str:
        raise RuntimeError(f"payment API refused {KEY}")

    @mcp.tool
    def ping() -> str:
        return "pong"

    mcp.add_middleware(
        GuardMiddleware(
            {"name": "p", "default_effect": "allow", "rules": []},
            principal=Principal("alice"),
            audit=None,
            telemetry=GuardTelemetry(registry=CollectorRegistry()),
        )
    )
    async with Client(mcp) as client:
        assert (await client.call_tool("ping", {})).data == "pong"
        with pytest.raises(Exception, match="payment API refused"):
            await client.call_tool("charge", {"amount": 1})
    finished = spans.get_finished_spans()
    before = {s.context.span_id: s for s in finished}
    assert KEY in repr([(s.status.description, [e.attributes for e in s.events])
                        for s in before.values()])  # fmt: skip
    kept = Kept()
    assert ScrubbingSpanExporter(kept).export(finished) is SpanExportResult.SUCCESS
    handed = kept.handed
    assert len(handed) == len(before)
    for span in handed:
        original = before[span.context.span_id]
        dump = repr((span.name, dict(span.attributes or {}), span.status.description,
                     [dict(e.attributes or {}) for e in span.events]))  # fmt: skip
        assert KEY not in dump
        leaked = KEY in repr((original.status.description,
                              [dict(e.attributes or {}) for e in original.events]))  # fmt: skip
        # the guard's own spans, and any span with nothing to mask, go on as they came
        assert (span is original) is not leaked, span.name
        if leaked:
            assert span.name == original.name and span.parent == original.parent
            assert dict(span.attributes or {}) == dict(original.attributes or {})
            assert [e.name for e in span.events] == [e.name for e in original.events]
            assert "<redacted:secret>" in (span.status.description or "")
            for event in span.events:  # a stack trace keeps all but the key
                trace = str((event.attributes or {}).get("exception.stacktrace", ""))
                assert not trace or ("Traceback" in trace and "<redacted:secret>" in trace)
    assert any(s.instrumentation_scope.name == "mcp_guard" for s in handed)
