"""Names of components the server does not have are the caller's text: they never become
metric labels (a flood of made-up names would take the label budget from the real tools,
and a made-up URI may carry a credential)."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from fastmcp import Client
from fastmcp.exceptions import ToolError
from mcp import types
from mcp.shared.exceptions import MCPError
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
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


@pytest.mark.parametrize("kind", ["prompt", "resource_template"])
async def test_a_completion_whose_target_cannot_be_resolved_keeps_its_name_out(kind: str) -> None:
    """A completion's reference is the caller's text. When looking it up failed (a proxied
    backend down), the guard denied it but labelled, spanned and recorded it as a component
    it had found: every made-up name, a token among them, became a `resource` label and a
    span name."""
    exported = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exported))
    registry = CollectorRegistry()
    telemetry = GuardTelemetry(registry=registry, tracer_provider=provider, max_resources=20)
    mcp = demo_server()

    async def unreachable(ref_type: str, key: str) -> None:
        raise ConnectionError("backend down")

    mcp._completion_target = unreachable  # type: ignore[method-assign]
    ref: Callable[[int], types.PromptReference | types.ResourceTemplateReference]
    if kind == "prompt":
        ref = lambda i: types.PromptReference(type="ref/prompt", name=f"{SECRET}{i}")  # noqa: E731
    else:
        ref = lambda i: types.ResourceTemplateReference(  # noqa: E731
            type="ref/resource", uri=f"data://x/{i}?api_key={SECRET}"
        )
    mcp.add_middleware(GuardMiddleware(POLICY, principal=ALICE, audit=None, telemetry=telemetry))
    async with Client(mcp) as client:
        for i in range(30):  # more than the label budget
            with pytest.raises(MCPError):
                await client.complete(ref(i), {"name": "name", "value": "x"})
    exposition = generate_latest(registry).decode()
    assert SECRET not in exposition
    action = "get" if kind == "prompt" else "read"
    labels = {"decision": "deny", "reason": "error", "kind": kind, "action": action,
              "resource": UNKNOWN_COMPONENT, "rule": "", "policy": ""}  # fmt: skip
    assert registry.get_sample_value("mcpguard_decisions_total", labels) == 30.0
    assert len(telemetry.metrics.children) == 1
    spans = exported.get_finished_spans()
    assert len(spans) == 30 and SECRET not in repr([(s.name, s.attributes) for s in spans])
