"""`mcpguard_decisions_total` is counted in a `DecisionTally` (one lock for every series,
not one per series), and decision latency in a `DurationTally`: what a scrape reads must
be what prometheus-client's own `Counter` and `Histogram` exposed for the same
observations, in both exposition formats, `_created` samples included or left out alike,
exemplars too; and no count may be lost to threads counting the same series at once."""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator

import pytest
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client import metrics as client_metrics
from prometheus_client.openmetrics.exposition import generate_latest as openmetrics_latest

from guard.telemetry.metrics import DURATION_BUCKETS, DecisionTally, GuardMetrics

LABELS = ("decision", "reason", "kind", "action", "resource", "rule", "policy")
SERIES = {
    (True, "rule", "tool", "call", "get_weather", "users-read", "main"): 3,
    (False, "default", "tool", "list", "admin_tool", "", "main"): 2,
    (False, "rule", "prompt", "get", 'odd "name"\\\n', "deny-all", "p2"): 1,
}


def _decision_lines(text: bytes) -> list[str]:
    """The family's lines, the `_created` timestamps (the two differ in when) blanked."""
    return [
        re.sub(r"(_created\{.*\}) \S+$", r"\1 T", line)
        for line in text.decode().splitlines()
        if "mcpguard_decisions" in line
    ]


def _both() -> tuple[CollectorRegistry, CollectorRegistry]:
    ours, theirs = CollectorRegistry(), CollectorRegistry()
    metrics = GuardMetrics(ours)
    counter = Counter("mcpguard_decisions", "Authorization decisions.", LABELS, registry=theirs)
    for key, n in SERIES.items():
        cell = metrics.decision_child(*key)
        metrics.count(cell)
        metrics.count_all([cell] * (n - 1))
        allowed, *rest = key
        counter.labels("allow" if allowed else "deny", *rest).inc(n)
    return ours, theirs


@pytest.fixture
def created_off() -> Iterator[None]:
    client_metrics.disable_created_metrics()
    try:
        yield
    finally:
        client_metrics.enable_created_metrics()


@pytest.mark.parametrize("exposition", [generate_latest, openmetrics_latest])
def test_a_scrape_reads_what_a_counter_exposed(exposition) -> None:  # type: ignore[no-untyped-def]
    ours, theirs = _both()
    lines = _decision_lines(exposition(ours))
    assert any("_created" in line for line in lines)
    assert lines == _decision_lines(exposition(theirs))


@pytest.mark.usefixtures("created_off")
def test_created_samples_go_as_the_counters_do() -> None:
    ours, theirs = _both()
    lines = _decision_lines(generate_latest(ours))
    assert lines == _decision_lines(generate_latest(theirs))
    assert not any("_created" in line for line in lines)


def test_a_series_reads_its_count() -> None:
    ours, _ = _both()
    labels = dict(zip(LABELS, ("allow", "rule", "tool", "call", "get_weather"), strict=False))
    labels |= {"rule": "users-read", "policy": "main"}
    assert ours.get_sample_value("mcpguard_decisions_total", labels) == 3.0


def test_counts_from_many_threads_add_up() -> None:
    registry = CollectorRegistry()
    tally = DecisionTally("t", "t", ("a",), registry)
    cells = [tally.labels(str(i)) for i in range(10)]
    start = threading.Barrier(8)

    def work() -> None:
        start.wait()
        for _ in range(2_000):
            tally.count(cells[0])
            tally.count_all(cells)

    threads = [threading.Thread(target=work) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert registry.get_sample_value("t_total", {"a": "0"}) == 8 * 2_000 * 2
    assert registry.get_sample_value("t_total", {"a": "9"}) == 8 * 2_000


def test_label_values_are_checked_and_made_text() -> None:
    tally = DecisionTally("t", "t", ("a", "b"), CollectorRegistry())
    with pytest.raises(ValueError, match="2 label values"):
        tally.labels("only one")
    assert tally.labels("x", 1) is tally.labels("x", "1")


# observations in every bucket and past the last, on the bounds, NaN (only summed) and a
# negative one; some with exemplars
OBSERVED = [
    (2e-06, "a" * 32), (3e-05, None), (1e-03, "b" * 32), (5.0, "c" * 32), (1e-05, None),
    (float("nan"), None), (-1.0, None), (5e-06, "d" * 32), (0.1, None), (2e-06, "e" * 32),
]  # fmt: skip


def _latency_lines(text: bytes) -> list[str]:
    """The histogram's lines, `_created` and exemplar timestamps (made apart) blanked."""
    lines = []
    for line in text.decode().splitlines():
        if "mcpguard_decision_duration" in line:
            line = re.sub(r"(_created) \S+$", r"\1 T", line)
            lines.append(re.sub(r"(# \{[^}]*\} \S+) \S+$", r"\1 T", line))
    return lines


def _latencies() -> tuple[CollectorRegistry, CollectorRegistry]:
    ours, theirs = CollectorRegistry(), CollectorRegistry()
    metrics = GuardMetrics(ours)
    histogram = Histogram(
        "mcpguard_decision_duration_seconds",
        "Time the policy set spent deciding one request (by a rule or the default).",
        buckets=DURATION_BUCKETS,
        registry=theirs,
    )
    for seconds, trace_id in OBSERVED:
        exemplar = None if trace_id is None else {"trace_id": trace_id}
        metrics.duration.observe(seconds, exemplar)
        histogram.observe(seconds, exemplar)
    return ours, theirs


@pytest.mark.parametrize("exposition", [generate_latest, openmetrics_latest])
def test_a_scrape_reads_what_a_histogram_exposed(exposition) -> None:  # type: ignore[no-untyped-def]
    ours, theirs = _latencies()
    lines = _latency_lines(exposition(ours))
    assert any("_created" in line for line in lines)
    assert lines == _latency_lines(exposition(theirs))


def test_the_latest_exemplar_of_each_bucket_is_shown() -> None:
    ours, _ = _latencies()
    text = openmetrics_latest(ours).decode()
    shown = re.findall(r'_bucket\{le="([^"]+)"\} \S+ # \{trace_id="(\w+)"\}', text)
    assert shown == [("5e-06", "e" * 32), ("0.001", "b" * 32), ("+Inf", "c" * 32)]
    assert ours.get_sample_value("mcpguard_decision_duration_seconds_count") == 9.0


@pytest.mark.usefixtures("created_off")
def test_histogram_created_samples_go_as_the_histograms_do() -> None:
    ours, theirs = _latencies()
    lines = _latency_lines(generate_latest(ours))
    assert lines == _latency_lines(generate_latest(theirs))
    assert not any("_created" in line for line in lines)
