"""Multiprocess mode: two worker processes, one aggregated scrape."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.multiprocess import mark_process_dead
from prometheus_client.openmetrics.exposition import generate_latest as openmetrics_latest

from guard.telemetry import GuardTelemetry, scrape_registry

_WORKER = Path(__file__).with_name("mp_worker.py")
_REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def workers(tmp_path: Path) -> Iterator[tuple[Path, list[subprocess.Popen[str]]]]:
    directory = tmp_path / "prom-mp"
    directory.mkdir()
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(directory), "PYTHONPATH": str(_REPO)}
    procs = [
        subprocess.Popen(
            [sys.executable, str(_WORKER), str(n)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=env,
        )
        for n in (3, 5)
    ]
    try:
        for proc in procs:
            assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        yield directory, procs
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.communicate("bye\n", timeout=10)


def test_two_workers_aggregate_into_one_scrape(
    workers: tuple[Path, list[subprocess.Popen[str]]],
) -> None:
    directory, procs = workers
    registry = scrape_registry(path=str(directory))
    get = registry.get_sample_value
    labels = {
        "decision": "allow",
        "reason": "rule",
        "kind": "tool",
        "action": "call",
        "resource": "get_weather",
        "rule": "r",
        "policy": "",
    }
    assert get("mcpguard_decisions_total", labels) == 8.0
    assert get("mcpguard_decision_duration_seconds_count") == 8.0
    assert (
        get("mcpguard_auth_failures_total", {"method": "api_key", "reason": "invalid_api_key"})
        == 2.0
    )
    # policy info is a live gauge: one series per live worker, told apart by pid
    info = {
        s.labels["pid"]
        for m in registry.collect()
        if m.name == "mcpguard_policy_info"
        for s in m.samples
    }
    assert info == {str(p.pid) for p in procs}
    # exemplars are not supported by prometheus-client's multiprocess files: none served
    assert b"# {" not in openmetrics_latest(registry)

    # a worker exits: its live gauges go once it is marked dead; counters are kept
    procs[0].communicate("bye\n", timeout=10)
    mark_process_dead(procs[0].pid, str(directory))
    registry = scrape_registry(path=str(directory))
    info = {
        s.labels["pid"]
        for m in registry.collect()
        if m.name == "mcpguard_policy_info"
        for s in m.samples
    }
    assert info == {str(procs[1].pid)}
    assert registry.get_sample_value("mcpguard_decisions_total", labels) == 8.0


def test_serving_process_adds_its_audit_stats(
    workers: tuple[Path, list[subprocess.Popen[str]]],
) -> None:
    # Collectors built at scrape time have no multiprocess file: the serving process adds
    # its own (its audit writer's stats) to the aggregate.
    directory, _ = workers
    local = CollectorRegistry()
    telemetry = GuardTelemetry(registry=local)
    telemetry.add_audit_source(lambda: {"queue_depth": 4, "written": 9})
    registry = scrape_registry(local, path=str(directory))
    assert registry.get_sample_value("mcpguard_audit_queue_depth") == 4.0
    assert registry.get_sample_value("mcpguard_audit_rows_written_total") == 9.0
    total = registry.get_sample_value(
        "mcpguard_decision_duration_seconds_count"
    )  # the workers' 8, not doubled by the local (non-multiprocess) metrics
    assert total == 8.0
