"""Per-decision cost of the guard's telemetry, against `NoTelemetry` measured in the same run.

Run: `python3 benchmarks/bench_telemetry.py` (prints microseconds and ratios; no assertions).
Cases: telemetry off; metrics with the OpenTelemetry API only (no SDK: spans are no-ops);
metrics plus recording SDK spans (a processor that drops them, so export cost is excluded);
and a `tools/list` of 100 components decided under one server span.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.trace import SpanKind
from prometheus_client import CollectorRegistry

from guard.events import DecisionEvent
from guard.policy.model import AccessRequest, Decision, Principal, Resource
from guard.telemetry import GuardTelemetry, NoTelemetry


def _event(name: str, method: str, action: str, allowed: bool = True) -> DecisionEvent:
    request = AccessRequest(
        principal=Principal("alice", ("user",), auth_method="api_key"),
        resource=Resource("tool", name), action=action, method=method,
    )
    decision = Decision(allowed, "rule", rule="r1", policy="p", policy_hash="h", eval_us=8.0)
    return DecisionEvent("id", request, decision, server="s", transport="http",
                         session_id="s1", request_id="1", method=method)


def _best(fn: Callable[[], None], n: int, repeat: int = 5) -> float:
    """Best-of-`repeat` microseconds per call of `fn` over `n` calls."""
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        for _ in range(n):
            fn()
        best = min(best, (time.perf_counter() - t0) / n * 1e6)
    return best


def _one(telemetry: Any, event: DecisionEvent) -> Callable[[], None]:
    def run() -> None:
        telemetry.end_decision(telemetry.start_decision("tools/call", "get_weather"), event)

    return run


def main() -> None:
    call = _event("get_weather", "tools/call", "call")
    listed = [_event(f"tool_{i}", "tools/list", "list", allowed=i % 4 != 0) for i in range(100)]
    off = NoTelemetry()
    noop = trace.NoOpTracerProvider()
    api_only = GuardTelemetry(registry=CollectorRegistry(), tracer_provider=noop)
    sdk = TracerProvider()  # no processor: spans record but are not exported
    with_sdk = GuardTelemetry(registry=CollectorRegistry(), tracer_provider=sdk)
    parent_tracer = sdk.get_tracer("bench")

    def list_of_100(telemetry: Any) -> Callable[[], None]:
        def run() -> None:
            with parent_tracer.start_as_current_span("tools/list", kind=SpanKind.SERVER):
                for ev in listed:
                    handle = telemetry.start_decision("tools/list", ev.request.resource.name)
                    telemetry.end_decision(handle, ev)

        return run

    def empty_parent() -> None:
        with parent_tracer.start_as_current_span("tools/list", kind=SpanKind.SERVER):
            pass

    n = 20_000
    base = _best(_one(off, call), n)
    rows = [
        ("tools/call, telemetry off (baseline)", base),
        ("tools/call, metrics + API-only spans", _best(_one(api_only, call), n)),
        ("tools/call, metrics + recording SDK span", _best(_one(with_sdk, call), n)),
    ]
    parent = _best(empty_parent, 2_000)
    list_off = _best(list_of_100(off), 300) - parent
    list_on = _best(list_of_100(with_sdk), 300) - parent
    print(f"{'case':48} {'us/op':>9} {'x baseline':>11}")
    for label, us in rows:
        print(f"{label:48} {us:9.2f} {us / base:11.1f}")
    print(f"{'tools/list of 100, telemetry off':48} {list_off:9.2f} {'':>11}")
    added = list_on - list_off
    print(f"{'tools/list of 100, metrics + SDK (added total)':48} {added:9.2f} {'':>11}")


if __name__ == "__main__":
    main()
