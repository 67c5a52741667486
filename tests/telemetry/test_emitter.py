"""GuardTelemetry: decision spans, metrics and their link through exemplars."""

from __future__ import annotations

import re
from types import SimpleNamespace
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.trace import SpanKind, StatusCode
from prometheus_client import CollectorRegistry
from prometheus_client.openmetrics.exposition import generate_latest as openmetrics_latest

from guard.policy.model import Decision
from guard.telemetry import GuardTelemetry, NoTelemetry, default_telemetry, emitter

_tracer = trace.get_tracer("tests")


def _decide(telemetry: GuardTelemetry, event: Any) -> Any:
    handle = telemetry.start_decision(event.method, event.request.resource.name)
    telemetry.end_decision(handle, event)
    return handle


def test_allow_span_is_child_of_server_span_with_attributes(
    registry: CollectorRegistry, spans: Any, make_event: Any
) -> None:
    telemetry = GuardTelemetry(registry=registry)
    shadow = Decision(allowed=False, reason="rule", rule="draft-deny")
    with _tracer.start_as_current_span("tools/call get_weather", kind=SpanKind.SERVER) as parent:
        handle = _decide(telemetry, make_event(shadow=shadow))
    finished = {s.name: s for s in spans.get_finished_spans()}
    span = finished["authorize get_weather"]
    assert span.kind is SpanKind.INTERNAL
    assert span.parent is not None and span.parent.span_id == parent.get_span_context().span_id
    assert handle.trace_id == format(span.context.trace_id, "032x")
    assert handle.span_id == format(span.context.span_id, "016x")
    attrs = dict(span.attributes or {})
    assert attrs["mcp.method.name"] == "tools/call"
    assert attrs["gen_ai.tool.name"] == "get_weather"
    assert attrs["mcp.session.id"] == "sess-1"
    assert attrs["jsonrpc.request.id"] == "7"
    assert attrs["mcp_guard.decision"] == "allow"
    assert attrs["mcp_guard.reason"] == "rule"
    assert attrs["mcp_guard.rule"] == "users-may-read"
    assert attrs["mcp_guard.policy"] == "weather"
    assert attrs["mcp_guard.policy_hash"] == "sha256:abc123"
    assert attrs["mcp_guard.decision_id"] == "0190f0c0-0000-7000-8000-000000000001"
    assert attrs["mcp_guard.shadow.decision"] == "deny"
    assert attrs["enduser.id"] == "alice"
    assert tuple(attrs["mcp_guard.roles"]) == ("user",)
    assert span.status.status_code is StatusCode.UNSET


def test_deny_span_has_error_status_and_no_arguments(
    registry: CollectorRegistry, spans: Any, make_event: Any
) -> None:
    telemetry = GuardTelemetry(registry=registry)
    event = make_event(
        allowed=False, name="delete_city", rule="no-deletes", args={"password": "hunter2"}
    )
    with _tracer.start_as_current_span("tools/call delete_city", kind=SpanKind.SERVER):
        _decide(telemetry, event)
    span = next(s for s in spans.get_finished_spans() if s.name == "authorize delete_city")
    assert span.status.status_code is StatusCode.ERROR
    assert span.status.description is not None
    assert "delete_city" in span.status.description and "no-deletes" in span.status.description
    assert dict(span.attributes or {})["mcp_guard.decision"] == "deny"
    flat = repr(dict(span.attributes or {})) + repr(span.events)
    assert "hunter2" not in flat and "password" not in flat


def test_prompt_and_resource_use_their_semantic_names(
    registry: CollectorRegistry, spans: Any, make_event: Any
) -> None:
    telemetry = GuardTelemetry(registry=registry)
    prompt = make_event(kind="prompt", name="summarize", action="get", method="prompts/get")
    _decide(telemetry, prompt)
    _decide(
        telemetry,
        make_event(kind="resource", name="data://cities", action="read", method="resources/read"),
    )
    by_name = {s.name: dict(s.attributes or {}) for s in spans.get_finished_spans()}
    assert by_name["authorize summarize"]["gen_ai.prompt.name"] == "summarize"
    assert by_name["authorize data://cities"]["mcp.resource.uri"] == "data://cities"
    assert "gen_ai.tool.name" not in by_name["authorize summarize"]


def test_list_decisions_share_the_list_span_and_note_hidden_components(
    registry: CollectorRegistry, spans: Any, make_event: Any
) -> None:
    telemetry = GuardTelemetry(registry=registry, list_events=True)
    with _tracer.start_as_current_span("tools/list", kind=SpanKind.SERVER) as parent:
        handles = [
            _decide(
                telemetry,
                make_event(name=f"t{i}", action="list", method="tools/list", allowed=i % 3 != 0),
            )
            for i in range(9)
        ]
    finished = spans.get_finished_spans()
    assert [s.name for s in finished] == ["tools/list"]  # no span per component
    ctx = parent.get_span_context()
    assert {h.span_id for h in handles} == {format(ctx.span_id, "016x")}
    hidden = [e for e in finished[0].events if e.name == "mcp_guard.hidden"]
    assert sorted(e.attributes["mcp_guard.resource.name"] for e in hidden) == ["t0", "t3", "t6"]
    assert (
        registry.get_sample_value(
            "mcpguard_decisions_total",
            {
                "decision": "deny",
                "reason": "rule",
                "kind": "tool",
                "action": "list",
                "resource": "t3",
                "rule": "users-may-read",
                "policy": "weather",
            },
        )
        == 1.0
    )
    # list filtering stays out of the latency histogram
    assert registry.get_sample_value("mcpguard_decision_duration_seconds_count") == 0.0


def test_a_listing_observed_again_is_counted_and_noted_as_the_first(
    registry: CollectorRegistry, spans: Any, make_event: Any
) -> None:
    """`prepare_listing`: the answers of a listing, observed again under another list span
    (the middleware's listings given again), count as they did and note each hidden
    component with its decision id in the new listing."""
    telemetry = GuardTelemetry(registry=registry, list_events=True)
    events = [
        make_event(name=f"t{i}", action="list", method="tools/list", allowed=i % 3 != 0)
        for i in range(6)
    ]
    observe = telemetry.prepare_listing(events)
    assert observe is not None
    for listing in ("L1", "L2"):
        with _tracer.start_as_current_span("tools/list", kind=SpanKind.SERVER):
            observe(telemetry.start_decision("tools/list", ""), listing)
    for span, listing in zip(spans.get_finished_spans(), ("L1", "L2"), strict=True):
        hidden = [dict(e.attributes or {}) for e in span.events if e.name == "mcp_guard.hidden"]
        assert [(h["mcp_guard.resource.name"], h["mcp_guard.decision_id"]) for h in hidden] == [
            ("t0", f"{listing}.1"), ("t3", f"{listing}.4")
        ]  # fmt: skip
    labels = {"reason": "rule", "kind": "tool", "action": "list", "rule": "users-may-read",
              "policy": "weather"}  # fmt: skip
    counted = registry.get_sample_value
    assert (
        counted("mcpguard_decisions_total", {**labels, "decision": "deny", "resource": "t3"}) == 2
    )
    assert (
        counted("mcpguard_decisions_total", {**labels, "decision": "allow", "resource": "t4"}) == 2
    )


def test_list_events_are_off_by_default(
    registry: CollectorRegistry, spans: Any, make_event: Any
) -> None:
    telemetry = GuardTelemetry(registry=registry)
    with _tracer.start_as_current_span("tools/list", kind=SpanKind.SERVER):
        handle = _decide(telemetry, make_event(allowed=False, action="list", method="tools/list"))
    (finished,) = spans.get_finished_spans()
    assert finished.events == () or list(finished.events) == []
    assert handle.trace_id == format(finished.context.trace_id, "032x")


def test_decision_metrics_and_exemplar_carry_the_trace_id(
    registry: CollectorRegistry, spans: Any, make_event: Any
) -> None:
    telemetry = GuardTelemetry(registry=registry)
    with _tracer.start_as_current_span("tools/call get_weather", kind=SpanKind.SERVER):
        handle = _decide(telemetry, make_event(eval_us=30.0))
    denied = _decide(telemetry, make_event(allowed=False, rule=None, reason="default", eval_us=3))
    labels = {
        "decision": "allow",
        "reason": "rule",
        "kind": "tool",
        "action": "call",
        "resource": "get_weather",
        "rule": "users-may-read",
        "policy": "weather",
    }
    assert registry.get_sample_value("mcpguard_decisions_total", labels) == 1.0
    assert (
        registry.get_sample_value(
            "mcpguard_decisions_total",
            {**labels, "decision": "deny", "reason": "default", "rule": ""},
        )
        == 1.0
    )
    assert registry.get_sample_value("mcpguard_decision_duration_seconds_count") == 2.0
    bucket = "mcpguard_decision_duration_seconds_bucket"
    assert registry.get_sample_value(bucket, {"le": "5e-06"}) == 1.0
    assert registry.get_sample_value(bucket, {"le": "5e-05"}) == 2.0
    text = openmetrics_latest(registry).decode()
    found = re.findall(bucket + r'\{le="([^"]+)"\} \S+ # \{trace_id="([0-9a-f]{32})"\}', text)
    # one exemplar per bucket hit: the 3 us denial in le=5e-06, the 30 us call in le=5e-05
    assert found == [("5e-06", denied.trace_id), ("5e-05", handle.trace_id)]
    traced = {format(s.context.trace_id, "032x") for s in spans.get_finished_spans()}
    assert {handle.trace_id, denied.trace_id} <= traced


def test_a_bucket_takes_a_new_exemplar_at_most_once_a_second(
    registry: CollectorRegistry, spans: Any, make_event: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A bucket exposes its latest exemplar only: each takes a new one at most every
    `EXEMPLAR_SECONDS`, every observation still counted, each bucket on its own clock."""
    clock = [100.0]
    monkeypatch.setattr(emitter, "time", SimpleNamespace(monotonic=lambda: clock[0]))
    telemetry = GuardTelemetry(registry=registry)
    bucket = "mcpguard_decision_duration_seconds_bucket"

    def exemplars() -> dict[str, str]:
        text = openmetrics_latest(registry).decode()
        found = re.findall(bucket + r'\{le="([^"]+)"\} \S+ # \{trace_id="([0-9a-f]{32})"\}', text)
        return dict(found)

    first = _decide(telemetry, make_event(eval_us=30.0))
    clock[0] += emitter.EXEMPLAR_SECONDS / 2
    _decide(telemetry, make_event(eval_us=30.0))  # the same bucket, too soon: counted only
    other = _decide(telemetry, make_event(eval_us=3.0))  # another bucket: its own clock
    assert exemplars() == {"5e-05": first.trace_id, "5e-06": other.trace_id}
    clock[0] += emitter.EXEMPLAR_SECONDS / 2
    last = _decide(telemetry, make_event(eval_us=30.0))
    assert exemplars() == {"5e-05": last.trace_id, "5e-06": other.trace_id}
    assert registry.get_sample_value(bucket, {"le": "5e-05"}) == 4.0
    assert len({first.trace_id, last.trace_id, other.trace_id}) == 3


def test_resource_label_folds_to_other_beyond_the_cap(
    registry: CollectorRegistry, make_event: Any
) -> None:
    telemetry = GuardTelemetry(registry=registry, max_resources=2)
    for name in ("a", "b", "c", "d", "a"):
        _decide(telemetry, make_event(name=name))
    values = {
        s.labels["resource"]: s.value
        for m in registry.collect()
        if m.name == "mcpguard_decisions"
        for s in m.samples
        if s.name == "mcpguard_decisions_total"
    }
    assert values == {"a": 2.0, "b": 1.0, "other": 2.0}


def test_user_ids_and_arguments_never_reach_metrics(
    registry: CollectorRegistry, make_event: Any
) -> None:
    telemetry = GuardTelemetry(registry=registry)
    _decide(telemetry, make_event(user="alice@example.com", args={"token": "sk-live-SECRET"}))
    telemetry.auth_failure("api_key", "invalid_key")
    text = openmetrics_latest(registry).decode()
    assert "alice" not in text and "SECRET" not in text and "token" not in text


def test_auth_failures_guard_errors_and_policy_info(registry: CollectorRegistry) -> None:
    class _Policy:
        def __init__(self, name: str, version: str) -> None:
            self.name, self.version = name, version

    class _Set:
        def __init__(self, digest: str, version: str) -> None:
            self.hash = digest
            self.policies = (_Policy("weather", version),)

    telemetry = GuardTelemetry(registry=registry)
    telemetry.auth_failure("jwt", "expired")
    telemetry.auth_failure("jwt", "expired")
    telemetry.guard_error("decide")
    telemetry.policy_reload("ok", _Set("h1", "1.0"))
    telemetry.policy_reload("error", _Set("h1", "1.0"))
    telemetry.policy_reload("ok", _Set("h2", "1.1"))
    get = registry.get_sample_value
    assert get("mcpguard_auth_failures_total", {"method": "jwt", "reason": "expired"}) == 2.0
    assert get("mcpguard_guard_errors_total", {"where": "decide"}) == 1.0
    assert get("mcpguard_policy_reloads_total", {"result": "ok"}) == 2.0
    assert get("mcpguard_policy_reloads_total", {"result": "error"}) == 1.0
    assert get("mcpguard_policy_info", {"hash": "h2", "version": "weather@1.1"}) == 1.0
    assert get("mcpguard_policy_info", {"hash": "h1", "version": "weather@1.0"}) is None


def test_audit_sources_are_summed_and_a_failing_source_is_skipped(
    registry: CollectorRegistry,
) -> None:
    telemetry = GuardTelemetry(registry=registry)
    assert registry.get_sample_value("mcpguard_audit_queue_depth") is None  # no writer yet

    def broken() -> dict[str, float]:
        raise RuntimeError("writer gone")

    stats = {
        "queue_depth": 3,
        "written": 10,
        "spilled": 1,
        "failed": 3,  # store writes the spill file absorbed: nothing lost
        "spill_failed": 1,
        "flush_seconds_sum": 0.5,
        "flush_seconds_count": 2,
    }
    telemetry.add_audit_source(lambda: stats)
    telemetry.add_audit_source(broken)
    telemetry.add_audit_source(lambda: {"queue_depth": 1, "written": 5, "failed": 2, "lost": 1})
    get = registry.get_sample_value
    assert get("mcpguard_audit_queue_depth") == 4.0
    assert get("mcpguard_audit_rows_written_total") == 15.0
    assert get("mcpguard_audit_rows_spilled_total") == 1.0
    assert get("mcpguard_audit_rows_failed_total") == 2.0
    assert get("mcpguard_audit_flush_seconds_total") == 0.5
    assert get("mcpguard_audit_flushes_total") == 2.0


def test_telemetry_never_raises_into_the_request(registry: CollectorRegistry) -> None:
    telemetry = GuardTelemetry(registry=registry)
    handle = telemetry.start_decision("tools/call", "x")
    telemetry.end_decision(handle, object())  # type: ignore[arg-type]
    telemetry.policy_reload("ok", object())
    # counted where a scrape shows it: the bad event (the reload went on without a hash)
    get = registry.get_sample_value
    assert get("mcpguard_guard_errors_total", {"where": "telemetry"}) == 1.0


def test_one_registry_holds_one_guard_telemetry(registry: CollectorRegistry) -> None:
    GuardTelemetry(registry=registry)
    try:
        GuardTelemetry(registry=registry)
    except ValueError as exc:
        assert "mcpguard_decisions" in str(exc)
    else:
        raise AssertionError("a second GuardTelemetry on the same registry must be refused")


def test_no_telemetry_and_default(monkeypatch: Any, make_event: Any) -> None:
    off = NoTelemetry()
    handle = off.start_decision("tools/call", "x")
    assert (handle.trace_id, handle.span_id) == ("", "")
    assert off.end_decision(handle, make_event()) is None
    monkeypatch.setenv("MCP_GUARD_TELEMETRY", "off")
    assert isinstance(default_telemetry(), NoTelemetry)
    monkeypatch.delenv("MCP_GUARD_TELEMETRY")
    first = default_telemetry()
    assert isinstance(first, GuardTelemetry) and default_telemetry() is first


def test_untraced_decision_has_empty_ids_and_no_exemplar(make_event: Any) -> None:
    registry = CollectorRegistry()
    telemetry = GuardTelemetry(registry=registry, tracer_provider=trace.NoOpTracerProvider())
    handle = _decide(telemetry, make_event())
    assert (handle.trace_id, handle.span_id) == ("", "")
    assert "# {" not in openmetrics_latest(registry).decode()
    assert registry.get_sample_value("mcpguard_decision_duration_seconds_count") == 1.0


def test_a_dropped_audit_log_stops_being_reported_but_stays_counted(
    registry: CollectorRegistry,
) -> None:
    import gc

    class _Log:
        def __init__(self, written: int) -> None:
            self.written = written
            self.sick = False

        def stats(self) -> dict[str, float]:
            if self.sick:
                raise RuntimeError("writer is sick")
            return {"queue_depth": 2, "written": self.written, "lost": 1}

    telemetry = GuardTelemetry(registry=registry)
    gone, stays = _Log(5), _Log(3)
    telemetry.add_audit_source(gone.stats)
    telemetry.add_audit_source(stays.stats)
    get = registry.get_sample_value
    assert get("mcpguard_audit_queue_depth") == 4.0
    assert get("mcpguard_audit_rows_written_total") == 8.0
    gone.written = 7  # counted up after the last scrape...
    assert get("mcpguard_audit_rows_written_total") == 10.0
    del gone  # ... then dropped: what it last reported stays counted (no counter reset)
    gc.collect()
    assert get("mcpguard_audit_queue_depth") == 2.0
    assert get("mcpguard_audit_rows_written_total") == 10.0
    assert get("mcpguard_audit_rows_failed_total") == 2.0
    stays.sick = True  # a source that raises counts with what it last reported
    assert get("mcpguard_audit_rows_written_total") == 10.0
    assert get("mcpguard_audit_queue_depth") == 0.0
    stays.sick, stays.written = False, 4
    assert get("mcpguard_audit_rows_written_total") == 11.0
    del stays
    gc.collect()
    assert get("mcpguard_audit_queue_depth") == 0.0  # no writer: nothing waits
    assert get("mcpguard_audit_rows_written_total") == 11.0


def test_odd_label_values_fold_per_label(registry: CollectorRegistry) -> None:
    telemetry = GuardTelemetry(registry=registry)
    for i in range(100):
        telemetry.auth_failure("api_key", f"reason-{i}")
    telemetry.guard_error("decide")
    get = registry.get_sample_value
    assert get("mcpguard_auth_failures_total", {"method": "api_key", "reason": "other"}) == 36.0
    assert get("mcpguard_guard_errors_total", {"where": "decide"}) == 1.0


def test_decision_logs_carry_the_decision_and_its_span(
    registry: CollectorRegistry, spans: Any, make_event: Any
) -> None:
    from opentelemetry.sdk._logs import LoggerProvider
    from opentelemetry.sdk._logs.export import (
        InMemoryLogRecordExporter,
        SimpleLogRecordProcessor,
    )

    exporter = InMemoryLogRecordExporter()
    provider = LoggerProvider()
    provider.add_log_record_processor(SimpleLogRecordProcessor(exporter))
    telemetry = GuardTelemetry(registry=registry, decision_logs=provider)
    with _tracer.start_as_current_span("tools/call delete_city", kind=SpanKind.SERVER):
        handle = _decide(
            telemetry, make_event(allowed=False, name="delete_city", args={"password": "hunter2"})
        )
    with _tracer.start_as_current_span("tools/list", kind=SpanKind.SERVER) as listing:
        _decide(telemetry, make_event(name="t1", action="list", method="tools/list"))
    records = [r.log_record for r in exporter.get_finished_logs()]
    assert len(records) == 2
    denied, listed = records
    assert denied.event_name == "mcp_guard.decision"
    assert denied.body == "deny call tool delete_city" and denied.severity_text == "WARN"
    assert format(denied.trace_id or 0, "032x") == handle.trace_id
    assert format(denied.span_id or 0, "016x") == handle.span_id
    attrs = dict(denied.attributes or {})
    assert attrs["mcp_guard.rule"] == "users-may-read" and attrs["enduser.id"] == "alice"
    assert "hunter2" not in repr(attrs)
    assert listed.span_id == listing.get_span_context().span_id  # the list's server span
    provider.shutdown()


def test_a_telemetry_on_the_global_registry_becomes_the_default() -> None:
    # global state: checked in a fresh interpreter
    import subprocess
    import sys

    code = (
        "from guard.telemetry import GuardTelemetry, default_telemetry\n"
        "mine = GuardTelemetry(list_events=True)\n"
        "assert default_telemetry() is mine\n"
        "try:\n"
        "    GuardTelemetry()\n"
        "except ValueError as exc:\n"
        "    print(exc)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    assert "default_telemetry()" in result.stdout
    assert "registry=CollectorRegistry()" in result.stdout


def test_importing_guard_telemetry_stays_light() -> None:
    import subprocess
    import sys

    code = (
        "import sys, guard.telemetry\n"
        "heavy = [m for m in sys.modules if m.startswith(('prometheus_client', 'opentelemetry',"
        " 'fastmcp', 'duckdb'))]\n"
        "print(heavy)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_decisions_are_counted_by_the_policy_of_their_rule(
    registry: CollectorRegistry, make_event: Any
) -> None:
    """Rule names are unique only within a policy: two policies' `allow_staff` rules are
    two series, and a flood of policy names folds into `other` like component names."""
    telemetry = GuardTelemetry(registry=registry)
    for policy in ("billing", "billing", "support"):
        _decide(telemetry, make_event(rule="allow_staff", policy=policy))
    for n in range(100):  # more policies than the label keeps
        _decide(telemetry, make_event(rule="allow_staff", policy=f"p{n}"))
    labels = {"decision": "allow", "reason": "rule", "kind": "tool", "action": "call",
              "resource": "get_weather", "rule": "allow_staff"}  # fmt: skip
    counted = registry.get_sample_value
    assert counted("mcpguard_decisions_total", {**labels, "policy": "billing"}) == 2.0
    assert counted("mcpguard_decisions_total", {**labels, "policy": "support"}) == 1.0
    assert counted("mcpguard_decisions_total", {**labels, "policy": "other"}) == 100 - 62
