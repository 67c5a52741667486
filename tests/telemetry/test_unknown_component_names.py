"""The name of a component the server does not have is the caller's text. The
metrics fold it (test_unknown_components) and the span name says `authorize <unknown>`,
but `gen_ai.tool.name`, the span status description and the decision log body carry it
whole: unbounded (a JSON-RPC request id is cut at 256 characters; an unknown URI at 4,096)
and unredacted (an unknown URI shaped like a credential becomes `<redacted:secret>`)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from fastmcp import Client
from fastmcp.exceptions import ToolError
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client import CollectorRegistry

from guard import GuardMiddleware, Principal
from guard.telemetry import GuardTelemetry

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "middleware"))
from mw_support import POLICY, demo_server

ALICE = Principal("alice", roles=("user",), auth_method="test")
SECRET = "sk-live-0123456789abcdefABCDEF"


async def _denied_span(spans: InMemorySpanExporter, name: str) -> tuple[dict, str]:
    mcp = demo_server()
    mw = GuardMiddleware(
        POLICY, principal=ALICE, audit=None, telemetry=GuardTelemetry(registry=CollectorRegistry())
    )
    mcp.add_middleware(mw)
    async with Client(mcp) as client:
        with pytest.raises(ToolError):
            await client.call_tool(name, {})
    mw.close()
    (span,) = [s for s in spans.get_finished_spans() if s.name.startswith("authorize")]
    return dict(span.attributes or {}), span.status.description or ""


async def test_an_unknown_tool_name_is_bounded_on_the_span(spans: InMemorySpanExporter) -> None:
    attrs, status = await _denied_span(spans, "x" * 200_000)
    assert len(str(attrs.get("gen_ai.tool.name", ""))) <= 4096
    assert len(status) <= 4096


async def test_a_credential_shaped_unknown_tool_name_is_not_on_the_span(
    spans: InMemorySpanExporter,
) -> None:
    attrs, status = await _denied_span(spans, SECRET)
    assert SECRET not in repr(attrs) + status, (attrs.get("gen_ai.tool.name"), status)


async def test_an_unknown_tool_name_is_recorded_as_shown(tmp_path: Path) -> None:
    """The record shows the name as the span does, and says it was redacted."""
    from guard.audit import AuditLog, open_store

    mcp = demo_server()
    mw = GuardMiddleware(POLICY, principal=ALICE, audit=AuditLog(tmp_path / "s"), telemetry=False)
    mcp.add_middleware(mw)
    async with Client(mcp) as client:
        with pytest.raises(ToolError):
            await client.call_tool(SECRET, {})
        with pytest.raises(ToolError):
            await client.call_tool("nope", {})  # a short name is shown as sent
    mw.close()
    with open_store(tmp_path / "s") as db:
        got = db.execute(
            "SELECT resource, inputs_redacted FROM decisions WHERE method = 'tools/call' "
            "ORDER BY ts"
        ).fetchall()
    assert got == [("<redacted:secret>", ["resource"]), ("nope", None)]
