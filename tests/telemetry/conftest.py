"""Fixtures for telemetry tests: a fresh registry, captured spans, decision events."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client import CollectorRegistry

from guard.events import DecisionEvent
from guard.policy.model import AccessRequest, Decision, Principal, Resource

_EXPORTER = InMemorySpanExporter()
_installed = False


def _install_provider() -> None:
    """Capture spans from the global provider (FastMCP's spans go there too).

    The global provider can be set once per process, so this happens on first use only;
    if another test module set an SDK provider first, add our processor to it instead.
    """
    global _installed
    if _installed:
        return
    _installed = True
    current = trace.get_tracer_provider()
    if isinstance(current, TracerProvider):
        current.add_span_processor(SimpleSpanProcessor(_EXPORTER))
        return
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(_EXPORTER))
    trace.set_tracer_provider(provider)


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    _install_provider()
    _EXPORTER.clear()
    yield _EXPORTER
    _EXPORTER.clear()


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry()


def _make_event(
    *,
    allowed: bool = True,
    kind: str = "tool",
    name: str = "get_weather",
    action: str = "call",
    method: str = "tools/call",
    rule: str | None = "users-may-read",
    policy: str | None = "weather",
    reason: str = "rule",
    user: str | None = "alice",
    roles: tuple[str, ...] = ("user",),
    args: dict[str, Any] | None = None,
    shadow: Decision | None = None,
    eval_us: float = 12.0,
    decision_id: str = "0190f0c0-0000-7000-8000-000000000001",
) -> DecisionEvent:
    principal = Principal(user_id=user, roles=roles, auth_method="api_key", key_id="k-1a2b")
    resource = Resource(kind=kind, name=name, uri=name if kind != "tool" else None)  # type: ignore[arg-type]
    request = AccessRequest(
        principal=principal, resource=resource, action=action, args=args or {}, method=method
    )
    decision = Decision(
        allowed=allowed,
        reason=reason,
        rule=rule,
        policy=policy,
        policy_hash="sha256:abc123",
        eval_us=eval_us,
    )
    return DecisionEvent(
        decision_id=decision_id,
        request=request,
        decision=decision,
        shadow=shadow,
        server="weather",
        transport="http",
        session_id="sess-1",
        request_id="7",
        method=method,
    )


@pytest.fixture
def make_event() -> Any:
    """Build a `DecisionEvent` (keyword overrides for any field of interest)."""
    return _make_event
