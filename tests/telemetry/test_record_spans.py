"""A decision record names the span of its decision: a dashboard row links to its trace."""

from __future__ import annotations

from pathlib import Path

from fastmcp import Client, FastMCP
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client import CollectorRegistry

from guard import GuardMiddleware, Principal
from guard.audit import AuditLog, open_store
from guard.telemetry import GuardTelemetry

POLICY = {
    "name": "linked",
    "rules": [{"name": "users", "effect": "allow", "agents": {"roles": ["user"]},
               "tools": {"names": ["echo"]}}],
}  # fmt: skip


async def test_records_carry_the_trace_and_span_of_their_decision(
    tmp_path: Path, spans: InMemorySpanExporter, registry: CollectorRegistry
) -> None:
    mcp = FastMCP("linked")

    @mcp.tool
    def echo(text: str) -> str:
        return text

    @mcp.tool
    def other() -> str:
        return "hidden"

    mw = GuardMiddleware(
        POLICY,
        principal=Principal("alice", ("user",)),
        audit=AuditLog(tmp_path / "s"),
        telemetry=GuardTelemetry(registry=registry),
    )
    mcp.add_middleware(mw)
    async with Client(mcp) as client:
        assert [t.name for t in await client.list_tools()] == ["echo"]
        assert (await client.call_tool("echo", {"text": "x"})).data == "x"
    mw.close()
    with open_store(tmp_path / "s") as db:
        rows = db.sql(
            "SELECT method, resource, trace_id, span_id FROM decisions ORDER BY ts, decision_id"
        ).fetchall()
    finished = spans.get_finished_spans()
    ids = {
        (format(s.context.trace_id, "032x"), format(s.context.span_id, "016x")): s.name
        for s in finished
    }
    calls = [r for r in rows if r[0] == "tools/call"]
    assert [(r[1], ids.get((r[2], r[3]))) for r in calls] == [("echo", "authorize echo")]
    listed = [r for r in rows if r[0] == "tools/list"]
    assert {r[1] for r in listed} >= {"echo", "other"}
    # a listing's decisions share the span of the list request itself
    for _, _, trace_id, span_id in listed:
        name = ids.get((trace_id, span_id))
        assert name is not None and "tools/list" in name, (name, sorted(ids.values()))


async def test_spans_show_a_uri_as_the_record_does(
    tmp_path: Path, spans: InMemorySpanExporter, registry: CollectorRegistry
) -> None:
    """Found in review: the record redacted a template read's URI, the guard's span kept
    it as sent; and with no records at all nothing was redacted."""
    import pytest
    from mcp.shared.exceptions import MCPError

    secret = "sk-live-0123456789abcdefXYZ"
    mcp = FastMCP("vault")

    @mcp.resource("vault://{path}/data", name="vault")
    def vault(path: str) -> str:
        return "ok"

    for audit in (AuditLog(tmp_path / "s"), None):
        spans.clear()
        mw = GuardMiddleware(
            {"name": "v", "rules": [{"name": "r", "effect": "allow",
                                     "resource_templates": {"names": ["vault"]}}]},
            principal=Principal("alice", ("user",)),
            audit=audit,
            telemetry=GuardTelemetry(registry=CollectorRegistry()),
        )  # fmt: skip
        served = FastMCP("vault")
        served.mount(mcp)
        served.add_middleware(mw)
        async with Client(served) as client:
            await client.read_resource(f"vault://{secret}/data")
            with pytest.raises(MCPError):
                await client.read_resource("https://admin:hunter2pass@db.example.com/x")
        mw.close()
        # the guard's own spans (FastMCP's server spans name the URI as sent, see README)
        ours = [s for s in spans.get_finished_spans() if s.name.startswith("authorize")]
        shown = repr([(s.name, s.attributes, s.status.description) for s in ours])
        assert "vault://<redacted:secret>/data" in shown
        assert secret not in shown and "hunter2pass" not in shown
