"""The name of a tool the server does not have is the caller's text, and FastMCP and the
`mcp` SDK repeat it in their spans (span names, `gen_ai.tool.name`, the component key, the
status text, the exception's message and stack trace): a 4 MB name (under the MCP SDK's
HTTP body limit) became some 12 MB of span text, every character of which
`ScrubbingSpanExporter` searched for credential shapes, holding the GIL: about 6 s of a
stalled server per request that took FastMCP 0.05 s, and spans larger than an OTLP
collector accepts (found in review). A string past the exporter's bound now leaves as
the oversized marker, unsearched, as the guard's own records treat an oversized value."""

from __future__ import annotations

import time

import pytest
from fastmcp import Client, FastMCP
from fastmcp.exceptions import ToolError
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client import CollectorRegistry

from guard import GuardMiddleware, Principal
from guard.telemetry import GuardTelemetry, ScrubbingSpanExporter

HUGE = "Bearer " * 570_000  # 4 MB; a marker everywhere, no credential anywhere
KEY = "sk-live-" + "9f8e7d6c5b4a" * 3


async def _spans_of_a_call(spans: InMemorySpanExporter, name: str) -> list[ReadableSpan]:
    mcp = FastMCP("huge")

    @mcp.tool
    def ping() -> str:
        return "pong"

    mw = GuardMiddleware(
        {"name": "p", "default_effect": "allow", "rules": []},
        principal=Principal("alice"),
        audit=None,
        telemetry=GuardTelemetry(registry=CollectorRegistry()),
    )
    mcp.add_middleware(mw)
    async with Client(mcp) as client:
        with pytest.raises(ToolError):
            await client.call_tool(name, {})
    mw.close()
    return list(spans.get_finished_spans())


def _texts(span: ReadableSpan) -> list[str]:
    texts = [span.name, span.status.description or ""]
    for attributes in [span.attributes, *(e.attributes for e in span.events)]:
        texts += [v for v in (attributes or {}).values() if isinstance(v, str)]
    return texts


async def test_a_huge_caller_text_leaves_bounded_and_unsearched(
    spans: InMemorySpanExporter,
) -> None:
    made = await _spans_of_a_call(spans, HUGE)
    assert max(len(t) for s in made for t in _texts(s)) >= len(HUGE)  # what FastMCP made
    sent = InMemorySpanExporter()
    exporter = ScrubbingSpanExporter(sent)
    t0 = time.perf_counter()
    exporter.export(made)
    took = time.perf_counter() - t0
    out = sent.get_finished_spans()
    assert len(out) == len(made)
    longest = max(len(t) for s in out for t in _texts(s))
    assert longest <= 16_384, longest  # the README's bound
    assert any("<redacted:oversized chars=" in t for s in out for t in _texts(s))
    assert took < 1.0, took  # was ~6 s: every copy of the name searched


async def test_ordinary_texts_are_still_scrubbed(spans: InMemorySpanExporter) -> None:
    made = await _spans_of_a_call(spans, f"charge:{KEY}")
    sent = InMemorySpanExporter()
    ScrubbingSpanExporter(sent).export(made)
    texts = [t for s in sent.get_finished_spans() for t in _texts(s)]
    assert KEY not in repr(texts) and any("<redacted:secret>" in t for t in texts)
    # a stack trace is kept whole (FastMCP's are a few kilobytes)
    assert any("Traceback" in t for t in texts)


def test_the_bound_is_checked() -> None:
    for bad, error in ((True, TypeError), (10.5, TypeError), (100, ValueError)):
        with pytest.raises(error, match="max_chars"):
            ScrubbingSpanExporter(InMemorySpanExporter(), max_chars=bad)
    assert ScrubbingSpanExporter(InMemorySpanExporter(), max_chars=128).max_chars == 128
