"""A URI quoted in a text of FastMCP's spans (a denial's message, an exception) leaves
`ScrubbingSpanExporter` as a URI attribute does: without its password and the values of
its sensitive query parameters."""

from __future__ import annotations

import pytest
from fastmcp import Client, FastMCP
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client import CollectorRegistry

from guard import GuardMiddleware, Principal
from guard.telemetry import GuardTelemetry, ScrubbingSpanExporter

PASSWORD = "hunter2hunter2"  # a plain password: no credential shape to spot


async def test_a_denied_read_leaves_no_password_in_fastmcp_spans(
    spans: InMemorySpanExporter,
) -> None:
    mcp = FastMCP("vault")

    @mcp.resource("vault://{name}")
    def vault(name: str) -> str:
        return name

    mcp.add_middleware(
        GuardMiddleware(
            {"name": "p", "default_effect": "deny", "rules": []},
            principal=Principal("alice"),
            audit=None,
            telemetry=GuardTelemetry(registry=CollectorRegistry()),
        )
    )
    async with Client(mcp) as client:
        for uri in (f"vault://db?password={PASSWORD}", f"https://ops:{PASSWORD}@db.example/x"):
            with pytest.raises(Exception, match="not found"):
                await client.read_resource(uri)
    raw = spans.get_finished_spans()
    assert PASSWORD in repr([s.status.description for s in raw])  # the guard's denial text
    exported = InMemorySpanExporter()
    ScrubbingSpanExporter(exported).export(raw)
    sent = exported.get_finished_spans()
    texts = [
        (
            s.name,
            s.status.description,
            dict(s.attributes or {}),
            [dict(e.attributes or {}) for e in s.events],
        )
        for s in sent
    ]
    assert PASSWORD not in repr(texts)
    assert "vault://db?password=<redacted:path>" in repr(texts)  # the rest stays readable
