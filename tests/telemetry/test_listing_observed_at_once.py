"""A listing's decisions are observed at once (`prepare_listing`), not each on its own
(`end_decision`): the two must leave the same counts and the same span events, in the
same order, whatever the components' answers, draft answers and `list_events`."""

from __future__ import annotations

from typing import Any

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client import CollectorRegistry

from guard.policy.model import Decision
from guard.telemetry import GuardTelemetry

LISTING = "0190f0c0-0000-7000-8000-00000000000a"


def _events(make_event: Any) -> list[Any]:
    """Five components: shown, hidden by a rule, hidden by default, shown where the draft
    hides it, hidden where the draft shows it; the same component twice."""
    answers = [
        dict(allowed=True, name="a"),
        dict(allowed=False, name="b", rule="no-b"),
        dict(allowed=False, name="c", rule=None, reason="default"),
        dict(allowed=True, name="d", shadow=Decision(allowed=False, reason="rule", rule="x")),
        dict(allowed=False, name="e", shadow=Decision(allowed=True, reason="rule", rule="y")),
        dict(allowed=True, name="a"),
    ]
    return [
        make_event(action="list", method="tools/list", decision_id=f"{LISTING}.{n}", **answer)
        for n, answer in enumerate(answers, 1)
    ]


def _observed(events: list[Any], *, at_once: bool, list_events: bool) -> tuple[Any, Any]:
    """The decision counts and the list span's events after observing `events`."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    registry = CollectorRegistry()
    telemetry = GuardTelemetry(registry=registry, tracer_provider=provider, list_events=list_events)
    with provider.get_tracer("test").start_as_current_span("tools/list"):
        handle = telemetry.start_decision("tools/list", "")
        if at_once:
            observe = telemetry.prepare_listing(events)
            assert observe is not None
            observe(handle, LISTING)
        else:
            for event in events:
                telemetry.end_decision(handle, event)
    counts = sorted(
        (tuple(sorted(s.labels.items())), s.value)
        for metric in registry.collect()
        if metric.name == "mcpguard_decisions"
        for s in metric.samples
        if s.name.endswith("_total")
    )
    (span,) = exporter.get_finished_spans()
    return counts, [(e.name, dict(e.attributes or {})) for e in span.events]


@pytest.mark.parametrize("list_events", [True, False])
def test_at_once_is_as_each_on_its_own(make_event: Any, list_events: bool) -> None:
    events = _events(make_event)
    at_once = _observed(events, at_once=True, list_events=list_events)
    each = _observed(events, at_once=False, list_events=list_events)
    assert at_once == each
    counts, marks = at_once
    assert sum(value for _, value in counts) == len(events)
    names = [name for name, _ in marks]
    hidden = ["mcp_guard.hidden"] if list_events else []
    disagreement = ["mcp_guard.shadow.disagreement"]
    assert names == hidden * 2 + disagreement + hidden + disagreement
