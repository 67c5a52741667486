"""A worker process for test_multiprocess: N decisions with PROMETHEUS_MULTIPROC_DIR set."""

from __future__ import annotations

import sys

from prometheus_client import CollectorRegistry

from guard.events import DecisionEvent
from guard.policy.model import AccessRequest, Decision, Principal, Resource
from guard.telemetry import GuardTelemetry


class _Policy:
    name, version = "weather", "3.0"


class _Set:
    hash, policies = "h-mp", (_Policy(),)


def main(count: int) -> None:
    telemetry = GuardTelemetry(registry=CollectorRegistry())
    telemetry.policy_reload("ok", _Set())
    request = AccessRequest(
        Principal("u", ("user",)), Resource("tool", "get_weather"), "call", method="tools/call"
    )
    event = DecisionEvent(
        "id", request, Decision(True, "rule", rule="r", eval_us=7.0), method="tools/call"
    )
    for _ in range(count):
        handle = telemetry.start_decision("tools/call", "get_weather")
        telemetry.end_decision(handle, event)
    telemetry.auth_failure("api_key", "invalid_api_key")
    print("ready", flush=True)
    sys.stdin.readline()  # stay alive (a live worker) until the test says so


if __name__ == "__main__":
    main(int(sys.argv[1]))
