"""Per-decision cost of the guard's telemetry, beside `NoTelemetry` and `PolicySet.decide`
measured in the same run.

Run: `python3 benchmarks/bench_telemetry.py` (median and p99 µs; ratio = baseline/value).
Cases: telemetry off (`NoTelemetry`, the baseline); metrics with the OpenTelemetry API only
(no SDK: spans are no-ops); metrics plus a recording SDK span (a provider with no processor,
so export cost is excluded); the same plus a decision log record (`decision_logs`);
and a `tools/list` of 100 components decided under one server
span (target: < ~100 µs added in total), next to deciding those 100 components.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from opentelemetry import trace  # noqa: E402
from opentelemetry.sdk.trace import TracerProvider  # noqa: E402
from opentelemetry.trace import SpanKind  # noqa: E402
from prometheus_client import CollectorRegistry  # noqa: E402

from benchmarks._harness import header, row, time_call  # noqa: E402
from guard.events import DecisionEvent  # noqa: E402
from guard.policy import load_policies  # noqa: E402
from guard.policy.model import AccessRequest, Principal, Resource  # noqa: E402
from guard.telemetry import GuardTelemetry, NoTelemetry  # noqa: E402

POLICY = {
    "name": "bench",
    "default_effect": "deny",
    "rules": [
        {
            "name": "users",
            "effect": "allow",
            "agents": {"roles": ["user"]},
            "tools": {"patterns": ["tool_*", "get_*"]},
            "actions": ["list", "call"],
        }
    ],
}
PRINCIPAL = Principal("alice", ("user",), auth_method="api_key")


def _request(name: str, method: str, action: str) -> AccessRequest:
    return AccessRequest(PRINCIPAL, Resource("tool", name), action, method=method)


def main() -> None:
    policies = load_policies(POLICY)
    call = _request("get_weather", "tools/call", "call")
    call_event = DecisionEvent(
        "id",
        call,
        policies.decide(call),
        server="s",
        transport="http",
        session_id="s1",
        request_id="1",
        method="tools/call",
    )
    listed = [
        _request(f"tool_{i}" if i % 4 else f"hidden_{i}", "tools/list", "list") for i in range(100)
    ]
    list_events = [DecisionEvent("id", r, policies.decide(r), method="tools/list") for r in listed]

    sdk = TracerProvider()  # no processor: spans record but are not exported
    parent_tracer = sdk.get_tracer("bench")
    off = NoTelemetry()
    api_only = GuardTelemetry(
        registry=CollectorRegistry(), tracer_provider=trace.NoOpTracerProvider()
    )
    with_sdk = GuardTelemetry(registry=CollectorRegistry(), tracer_provider=sdk)
    from opentelemetry.sdk._logs import LoggerProvider

    with_logs = GuardTelemetry(
        registry=CollectorRegistry(), tracer_provider=sdk, decision_logs=LoggerProvider()
    )

    def one(telemetry: Any) -> Callable[[], None]:
        def run() -> None:
            telemetry.end_decision(
                telemetry.start_decision("tools/call", "get_weather"), call_event
            )

        return run

    def listing(telemetry: Any) -> Callable[[], None]:
        def run() -> None:
            with parent_tracer.start_as_current_span("tools/list", kind=SpanKind.SERVER):
                for ev in list_events:
                    handle = telemetry.start_decision("tools/list", ev.request.resource.name)
                    telemetry.end_decision(handle, ev)

        return run

    def decide_listing() -> None:
        for r in listed:
            policies.decide(r)

    base = time_call(one(off))
    decide = time_call(lambda: policies.decide(call))
    header("telemetry per decision (median µs; baseline: telemetry off)")
    row("tools/call, telemetry off", base.median_us)
    row("tools/call, decide() itself (reference)", decide.median_us)
    for label, telemetry in (
        ("metrics + API-only spans", api_only),
        ("metrics + recording SDK span", with_sdk),
        ("... + decision log record", with_logs),
    ):
        t = time_call(one(telemetry))
        row(f"tools/call, {label}", t.median_us)
        row("  added vs off (median)", t.median_us - base.median_us)
        row("  p99", t.p99_us)

    list_off = time_call(listing(off), samples=2_000)
    list_on = time_call(listing(with_sdk), samples=2_000)
    list_decide = time_call(decide_listing, samples=2_000)
    header("tools/list of 100 components, one server span (median µs)")
    row("telemetry off", list_off.median_us)
    row("metrics + SDK", list_on.median_us)
    row("added by telemetry (target < ~100)", list_on.median_us - list_off.median_us)
    row("deciding the 100 components (reference)", list_decide.median_us)


if __name__ == "__main__":
    main()
