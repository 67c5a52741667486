"""A child forked while another thread of the parent held one of the telemetry's locks (a
policy reload reporting the set in force, the default telemetry being built) can still
use it: the lock would otherwise stay held in the child
for ever, as no thread is left there to let go. Found in review: the child of a
pre-forking server restarts its policy watcher, whose first reload would have hung."""

from __future__ import annotations

import os
import select
import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

import guard.telemetry as telemetry_module
from guard.policy import load_policies
from guard.telemetry.metrics import GuardMetrics

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")

POLICY = {"name": "p", "default_effect": "deny", "rules": []}


@contextmanager
def held(get_lock: Callable[[], Any]) -> Iterator[None]:
    """Another thread holds the lock `get_lock()` returns while the body runs."""
    holding, release = threading.Event(), threading.Event()

    def hold() -> None:
        with get_lock():
            holding.set()
            release.wait(10)

    thread = threading.Thread(target=hold, daemon=True)
    thread.start()
    assert holding.wait(10)
    try:
        yield
    finally:
        release.set()
        thread.join(10)


def in_child(action: Callable[[], str]) -> str:
    """What `action` returns in a forked child, or 'hung' if it has not returned in 10 s."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.write(write, action().encode())
        finally:
            os._exit(0)
    os.close(write)
    ready, _, _ = select.select([read], [], [], 10)
    answer = os.read(read, 200).decode() if ready else "hung"
    if not ready:
        os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    os.close(read)
    return answer


def test_a_reload_reported_in_a_child_forked_mid_report() -> None:
    registry = CollectorRegistry()
    metrics = GuardMetrics(registry)
    first = load_policies(POLICY)
    second = load_policies({**POLICY, "version": "2"})
    metrics.policy_reload("ok", first)

    def reload_in_child() -> str:
        metrics.policy_reload("ok", second)
        value = registry.get_sample_value(
            "mcpguard_policy_info", {"hash": second.hash, "version": "p@2"}
        )
        return repr(value)

    with held(lambda: metrics._policy_lock):
        assert in_child(reload_in_child) == "1.0"


def test_the_default_telemetry_adopted_in_a_child_forked_mid_build(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(telemetry_module, "_default", None)
    monkeypatch.delenv("MCP_GUARD_TELEMETRY", raising=False)

    def adopt_in_child() -> str:
        # what a `GuardTelemetry` built on the global registry does (not built here: the
        # global registry may already hold metrics registered by other tests)
        made = telemetry_module.NoTelemetry()
        telemetry_module._adopt_default(made)
        return repr(telemetry_module.default_telemetry() is made)

    with held(lambda: telemetry_module._default_lock):
        assert in_child(adopt_in_child) == "True"


def test_a_decision_counted_in_a_child_forked_mid_count() -> None:
    registry = CollectorRegistry()
    metrics = GuardMetrics(registry)
    cell = metrics.decision_child(True, "rule", "tool", "call", "t", "r", "p")
    metrics.count(cell)
    labels = {"decision": "allow", "reason": "rule", "kind": "tool", "action": "call"}
    labels |= {"resource": "t", "rule": "r", "policy": "p"}

    def count_in_child() -> str:
        metrics.count(cell)
        metrics.count_all([cell, cell])
        return repr(registry.get_sample_value("mcpguard_decisions_total", labels))

    tally = metrics.decisions
    with held(lambda: tally._lock):  # type: ignore[union-attr]
        assert in_child(count_in_child) == "4.0"


def test_a_latency_observed_in_a_child_forked_mid_observation() -> None:
    registry = CollectorRegistry()
    metrics = GuardMetrics(registry)
    metrics.duration.observe(2e-6)

    def observe_in_child() -> str:
        metrics.duration.observe(3e-6)
        return repr(registry.get_sample_value("mcpguard_decision_duration_seconds_count"))

    tally = metrics.duration
    with held(lambda: tally._lock):  # type: ignore[union-attr]
        assert in_child(observe_in_child) == "2.0"
