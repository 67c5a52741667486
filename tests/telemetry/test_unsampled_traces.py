"""A decision whose span the sampler dropped still gets an exemplar naming its
trace id, so `configure(sample_ratio=0.1)` turns ~90 % of the dashboard's exemplar links
into "trace not found" (OpenTelemetry's default exemplar filter is trace-based: only
sampled spans); and its OTLP decision log claims the SAMPLED trace flag."""

from __future__ import annotations

from typing import Any

from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import InMemoryLogExporter, SimpleLogRecordProcessor
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF
from prometheus_client import CollectorRegistry
from prometheus_client.openmetrics.exposition import generate_latest

from guard.telemetry import GuardTelemetry


def test_an_unsampled_decision_leaves_no_exemplar(make_event: Any) -> None:
    registry = CollectorRegistry()
    telemetry = GuardTelemetry(
        registry=registry, tracer_provider=TracerProvider(sampler=ALWAYS_OFF)
    )
    handle = telemetry.start_decision("tools/call", "get_weather")
    telemetry.end_decision(handle, make_event())
    exposition = generate_latest(registry).decode()
    assert "trace_id=" not in exposition, [x for x in exposition.splitlines() if "trace_id" in x]


def test_an_unsampled_decision_log_is_not_flagged_sampled(make_event: Any) -> None:
    exporter = InMemoryLogExporter()
    logs = LoggerProvider()
    logs.add_log_record_processor(SimpleLogRecordProcessor(exporter))
    telemetry = GuardTelemetry(
        registry=CollectorRegistry(),
        tracer_provider=TracerProvider(sampler=ALWAYS_OFF),
        decision_logs=logs,
    )
    handle = telemetry.start_decision("tools/call", "get_weather")
    telemetry.end_decision(handle, make_event())
    (record,) = exporter.get_finished_logs()
    flags = record.log_record.trace_flags
    assert not (flags is not None and flags.sampled), (handle.trace_id, flags)
