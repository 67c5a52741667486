"""Names of components the server does not have are the caller's text: they never become
metric labels (a flood of made-up names would take the label budget from the real tools,
and a made-up URI may carry a credential)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from fastmcp import Client
from fastmcp.exceptions import ToolError
from mcp.shared.exceptions import MCPError
from prometheus_client import CollectorRegistry, generate_latest

from guard import GuardMiddleware, Principal
from guard.policy.model import UNKNOWN_COMPONENT
from guard.telemetry import GuardTelemetry

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "middleware"))
from mw_support import POLICY, demo_server

ALICE = Principal("alice", roles=("user",), auth_method="test")
SECRET = "sk-live-0123456789abcdefABCDEF"


async def test_made_up_names_leave_the_real_labels_and_no_secret() -> None:
    registry = CollectorRegistry()
    telemetry = GuardTelemetry(registry=registry, max_resources=20)
    mcp = demo_server()
    mcp.add_middleware(GuardMiddleware(POLICY, principal=ALICE, audit=None, telemetry=telemetry))
    async with Client(mcp) as client:
        for i in range(300):  # more than the label budget
            with pytest.raises(ToolError):
                await client.call_tool(f"probe_{i}", {})
        with pytest.raises(MCPError):
            await client.read_resource(f"data://nothing?api_key={SECRET}")
        await client.call_tool("echo", {"text": "x"})
    sample = registry.get_sample_value
    labels = {"decision": "allow", "reason": "rule", "kind": "tool", "action": "call",
              "resource": "echo", "rule": "user_safe_tools", "policy": "demo"}  # fmt: skip
    assert sample("mcpguard_decisions_total", labels) == 1.0  # not folded into `other`
    probes = {**labels, "decision": "deny", "reason": "default", "resource": UNKNOWN_COMPONENT,
              "rule": ""}  # fmt: skip
    assert sample("mcpguard_decisions_total", probes) == 300.0
    exposition = generate_latest(registry).decode()
    assert "probe_" not in exposition and SECRET not in exposition
    assert len(telemetry.metrics.children) < 10  # one child per label set, not per name


async def test_a_failing_span_exporter_leaves_the_decision_and_is_counted() -> None:
    """GuardTelemetry never raises into a request: tracing being down does not deny every
    call; the failure shows as guard_errors{where="telemetry"} (found in review: it was
    counted nowhere a scrape could see)."""
    from opentelemetry.sdk.trace import SpanProcessor, TracerProvider

    class Exploding(SpanProcessor):
        def on_end(self, span: object) -> None:
            raise RuntimeError("exporter down")

    provider = TracerProvider()
    provider.add_span_processor(Exploding())
    registry = CollectorRegistry()
    telemetry = GuardTelemetry(registry=registry, tracer_provider=provider)
    mcp = demo_server()
    mcp.add_middleware(GuardMiddleware(POLICY, principal=ALICE, audit=None, telemetry=telemetry))
    async with Client(mcp) as client:
        assert (await client.call_tool("echo", {"text": "x"})).data
    assert registry.get_sample_value("mcpguard_guard_errors_total", {"where": "telemetry"}) == 1
