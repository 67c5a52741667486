"""Prometheus metrics of the guard: names, labels, and the bounded-cardinality rules.

Every metric lives on one `CollectorRegistry` chosen at construction (the process default,
or a fresh one per test). Label values are bounded: decision, reason, kind, action, rule
and the server's own component names, folded to `other` beyond `max_resources` distinct
names so a server that invents names cannot blow up the series count. No label ever
carries a user id or an argument.

```python
from prometheus_client import CollectorRegistry
from guard.telemetry.metrics import GuardMetrics

metrics = GuardMetrics(CollectorRegistry())
metrics.auth_failure("api_key", "invalid_key")
```
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import math
import os
import threading
import time
import weakref
from bisect import bisect_left
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, Final

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client import metrics as _client_metrics
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector
from prometheus_client.samples import Exemplar
from prometheus_client.utils import floatToGoString

from guard._settings import whole

__all__ = [
    "DURATION_BUCKETS", "OTHER", "AuditCollector", "DecisionTally", "DurationTally",
    "GuardMetrics", "multiprocess_mode",
]  # fmt: skip

OTHER: Final = "other"
# Deciding takes microseconds; the tail that matters for alerts sits in the milliseconds.
DURATION_BUCKETS: Final = (
    5e-6,
    1e-5,
    2.5e-5,
    5e-5,
    1e-4,
    2.5e-4,
    5e-4,
    1e-3,
    2.5e-3,
    5e-3,
    1e-2,
    2.5e-2,
    0.1,
    1.0,
)
GUARD_ERROR_SITES: Final = (
    "authenticate",
    "decide",
    "shadow",
    "observe",
    "record",
    "outcome",
    "resolve",
    "telemetry",
)
# `mcpguard_policy_reloads_total{result}`: the live set (ok / error), a shadow draft that
# did not load (shadow_error)
_RELOAD_RESULTS: Final = frozenset({"ok", "error", "shadow_error"})
_DECISIONS_HELP: Final = "Authorization decisions."
_DURATION_HELP: Final = "Time the policy set spent deciding one request (by a rule or the default)."
_MAX_SMALL_LABEL: Final = 64  # distinct auth methods / reasons / error sites kept before folding

AuditStats = Callable[[], Mapping[str, Any]]


def multiprocess_mode() -> bool:
    """Whether prometheus-client writes values to `PROMETHEUS_MULTIPROC_DIR` (set before import)."""
    return bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))


class _Folder:
    """Maps label values to themselves until `limit` distinct ones were seen, then to `other`.

    No lock: threads meeting new values at the same moment may each add theirs past the
    limit, by at most one per thread, which a bound on series tolerates; a lock held by
    one of them when a pre-forking server forks would stay held in the child for ever."""

    __slots__ = ("_limit", "_seen")

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._seen: set[str] = set()

    def __call__(self, value: str) -> str:
        seen = self._seen
        if value in seen:
            return value
        if len(seen) < self._limit:
            seen.add(value)
            return value
        return OTHER


class DecisionTally(Collector):
    """A counter family whose series are counted under one lock: `mcpguard_decisions_total`.

    prometheus-client's `Counter` takes a lock per series and checks its arguments on
    every `inc()` (~300 ns); a listing decided afresh counts one series per component, and
    100 increments were a fifth of the guard's work on a listing of 100 tools. Here a
    series is a cell (`labels`), and `count` or `count_all` adds 1 to cells under the one
    lock (~40 ns a cell). Scrapes read a snapshot taken under it; the family, its
    `_total` samples and their `_created` twins are what the `Counter` exposed.

    In multiprocess mode (`PROMETHEUS_MULTIPROC_DIR`) prometheus-client's own counter
    stays: only its values reach the files other workers' scrapes read.
    """

    def __init__(
        self, name: str, documentation: str, labelnames: tuple[str, ...],
        registry: CollectorRegistry,
    ) -> None:  # fmt: skip
        self._name = name
        self._documentation = documentation
        self._labelnames = labelnames
        self._lock = threading.Lock()
        self._cells: dict[tuple[str, ...], list[float]] = {}  # labels -> [value, created]
        registry.register(self)

    def _after_fork(self) -> None:
        self._lock = threading.Lock()  # (a parent's request may have held it)

    def labels(self, *values: str) -> list[float]:
        """The cell of the series with these label values (made at 0 if new)."""
        if len(values) != len(self._labelnames):
            raise ValueError(f"{len(self._labelnames)} label values expected, got {len(values)}")
        key = tuple(map(str, values))
        with self._lock:
            cell = self._cells.get(key)
            if cell is None:
                cell = self._cells[key] = [0.0, time.time()]
        return cell

    def count(self, cell: list[float]) -> None:
        """Add 1 to one series (`cell`, from `labels`)."""
        with self._lock:
            cell[0] += 1

    def count_all(self, cells: Iterable[list[float]]) -> None:
        """Add 1 to each of `cells` (a cell given twice counts twice)."""
        with self._lock:
            for cell in cells:
                cell[0] += 1

    def describe(self) -> Iterator[Metric]:
        yield CounterMetricFamily(self._name, self._documentation, labels=self._labelnames)

    def collect(self) -> Iterator[Metric]:
        with self._lock:
            series = [(key, cell[0], cell[1]) for key, cell in self._cells.items()]
        created = _created_series()
        family = CounterMetricFamily(self._name, self._documentation, labels=self._labelnames)
        for key, value, since in series:
            family.add_metric(key, value, created=since if created else None)
        yield family


class DurationTally(Collector):
    """A histogram without labels observed under one lock: `mcpguard_decision_duration_seconds`.

    prometheus-client's `Histogram.observe` takes a lock for the sum and another for the
    bucket, after a search of the bounds in Python (~0.8 µs a decision); here one lock
    covers both, the bucket found by bisection (~0.2 µs). An exemplar (`{"trace_id":
    ...}`, the guard's own: not checked again) replaces its bucket's. A scrape reads the
    family, cumulative buckets, `_count`, `_sum` and `_created`, as the `Histogram`
    exposed them. Multiprocess mode keeps prometheus-client's own (see `DecisionTally`).
    """

    def __init__(
        self, name: str, documentation: str, bounds: tuple[float, ...],
        registry: CollectorRegistry,
    ) -> None:  # fmt: skip
        self._name = name
        self._documentation = documentation
        self._bounds = (*bounds, math.inf)
        self._labels = [floatToGoString(b) for b in self._bounds]  # type: ignore[no-untyped-call]
        self._lock = threading.Lock()
        self._counts = [0.0] * len(self._bounds)
        self._exemplars: list[Exemplar | None] = [None] * len(self._bounds)
        self._sum = 0.0
        self._created = time.time()
        registry.register(self)

    def _after_fork(self) -> None:
        self._lock = threading.Lock()  # (a parent's request may have held it)

    def observe(self, amount: float, exemplar: dict[str, str] | None = None) -> None:
        """Count one observation of `amount` (seconds) in its bucket, as `Histogram` does:
        the first bound it does not exceed (NaN: none, only the sum)."""
        i = bisect_left(self._bounds, amount)
        counted = i < len(self._bounds) and amount <= self._bounds[i]
        with self._lock:
            self._sum += amount
            if counted:
                self._counts[i] += 1
                if exemplar:
                    self._exemplars[i] = Exemplar(exemplar, amount, time.time())

    def describe(self) -> Iterator[Metric]:
        yield HistogramMetricFamily(self._name, self._documentation)

    def collect(self) -> Iterator[Metric]:
        with self._lock:
            counts, exemplars, total = list(self._counts), list(self._exemplars), self._sum
        family = HistogramMetricFamily(self._name, self._documentation)
        buckets: list[Any] = []
        acc = 0.0
        for label, count, exemplar in zip(self._labels, counts, exemplars, strict=True):
            acc += count
            buckets.append((label, acc) if exemplar is None else (label, acc, exemplar))
        family.add_metric([], buckets, total)
        if _created_series():
            family.add_sample(f"{self._name}_created", {}, self._created)
        yield family


def _created_series() -> bool:
    """Whether `_created` samples are exposed, as prometheus-client's own metrics decide:
    not after `disable_created_metrics()` (or with PROMETHEUS_DISABLE_CREATED_SERIES)."""
    return bool(getattr(_client_metrics, "_use_created", True))


def _count_one(child: Any) -> None:
    child.inc()


def _count_each(children: Iterable[Any]) -> None:
    for child in children:
        child.inc()


class AuditCollector(Collector):
    """Audit writer health, read from `AuditLog.stats()` callables at scrape time.

    Keys read: `queue_depth`, `written`, `spilled`, and as rows failed, the records the
    store is missing or may miss: `append_errors` (not queued or encoded), `spill_failed`
    (refused by the store and the spill file alike: in memory only), `spill_rejected`
    (spilled lines that could not be loaded back, set aside) and `lost` (neither stored
    nor spilled at close); `flush_seconds_sum`, `flush_seconds_count`,
    `flush_seconds_last` (missing keys count as 0). `failed`, rows whose store write
    failed, is not read: they went to the spill file (`spilled`), or count in
    `spill_failed`, and the critical alert on failed rows must not page for a store that
    refused writes while the spill file kept every record.

    Sources are summed, so several guarded servers in one process report one total. A
    source that raises is skipped: a scrape must never fail because the writer is sick.
    The counters never go down: a source that raises counts with what it last reported,
    and one whose writer is gone keeps counting that (Prometheus would read a drop as a
    counter reset, and `increase()` as a burst of spills or failures).
    """

    def __init__(self) -> None:
        # each source, and the counters it last reported (by `_COUNTED` position)
        self._sources: list[tuple[Callable[[], AuditStats | None], list[float]]] = []
        self._retired = [0.0] * len(_COUNTED)  # what sources now gone last reported
        self._lock = threading.Lock()  # scrapes may run in several threads at once
        # A forked child is a new process to Prometheus: its counters start from its own
        # writers' (which restart theirs), not from what the parent last reported.
        os.register_at_fork(after_in_child=functools.partial(_forked, weakref.ref(self)))

    def _after_fork(self) -> None:
        self._lock = threading.Lock()  # (a parent's scrape may have held it)
        self._retired = [0.0] * len(_COUNTED)
        self._sources = [(source, [0.0] * len(_COUNTED)) for source, _ in self._sources]

    def add(self, source: AuditStats) -> None:
        """Register a zero-argument callable returning the writer's stats mapping.

        A bound method (`log.stats`) is held weakly: a writer dropped by its owner stops
        being reported (its counters stay as it last reported them) instead of being kept
        alive by the process-wide telemetry. A source added again (one writer shared by
        two guards) is counted once.
        """
        if not callable(source):
            raise TypeError(f"audit stats source must be callable, got {type(source).__name__}")
        ref = weakref.WeakMethod(source) if inspect.ismethod(source) else (lambda: source)
        with self._lock:
            if not any(known() == source for known, _ in self._sources):
                self._sources.append((ref, [0.0] * len(_COUNTED)))

    def collect(self) -> Iterator[Metric]:
        with self._lock:
            if not self._sources and not any(self._retired):
                return
            counted = list(self._retired)
            queue_depth = flush_last = 0.0
            for entry in list(self._sources):
                ref, last = entry
                source = ref()
                if source is None:  # its writer is gone: what it reported stays counted
                    self._sources.remove(entry)
                    self._retired = [a + b for a, b in zip(self._retired, last, strict=True)]
                elif (stats := _stats_of(source)) is not None:
                    queue_depth += float(stats.get("queue_depth") or 0)
                    flush_last = max(flush_last, float(stats.get("flush_seconds_last") or 0))
                    # (a writer's counters only grow; max() keeps a confused one from
                    # pulling the total down)
                    last[:] = map(max, last, _counters(stats))
                counted = [a + b for a, b in zip(counted, last, strict=True)]
        written, spilled, failed, flush_sum, flush_count = counted
        yield GaugeMetricFamily(
            "mcpguard_audit_queue_depth",
            "Decision records waiting for the writer.",
            value=queue_depth,
        )
        yield CounterMetricFamily(
            "mcpguard_audit_rows_written", "Decision records written to the store.", value=written
        )
        yield CounterMetricFamily(
            "mcpguard_audit_rows_spilled",
            "Decision records spilled to the overflow file instead of the store.",
            value=spilled,
        )
        yield CounterMetricFamily(
            "mcpguard_audit_rows_failed",
            "Decision records lost or at risk: not queued, encoded, written nor spilled.",
            value=failed,
        )
        yield CounterMetricFamily(
            "mcpguard_audit_flush_seconds",
            "Time spent flushing batches to the store.",
            value=flush_sum,
        )
        yield CounterMetricFamily(
            "mcpguard_audit_flushes", "Batches flushed to the store.", value=flush_count
        )
        yield GaugeMetricFamily(
            "mcpguard_audit_last_flush_duration_seconds",
            "Duration of the latest flush.",
            value=flush_last,
        )


# The counters AuditCollector reports, in the order it keeps them.
_COUNTED: Final = ("written", "spilled", "failed", "flush_seconds_sum", "flush_seconds_count")
# records the store will not get, or may not: not queued or encoded, kept only in memory,
# spilled unreadable, or neither stored nor spilled at close
_LOST: Final = ("append_errors", "spill_failed", "spill_rejected", "lost")


def _forked(ref: weakref.ref[AuditCollector] | weakref.ref[GuardMetrics]) -> None:
    """In a forked child: `ref`'s object, if still alive, starts afresh (`_after_fork`)."""
    owner = ref()
    if owner is not None:
        owner._after_fork()


def _stats_of(source: AuditStats) -> Mapping[str, Any] | None:
    try:
        return source()
    except Exception:  # a sick writer must not break the scrape
        return None


def _counters(stats: Mapping[str, Any]) -> list[float]:
    def read(key: str) -> float:
        return float(stats.get(key) or 0)

    return [
        read("written"),
        read("spilled"),
        sum(read(key) for key in _LOST),
        read("flush_seconds_sum"),
        read("flush_seconds_count"),
    ]


class GuardMetrics:
    """The guard's metric families on one registry, with cached label children.

    Args:
        registry: where the metrics are registered (default: prometheus-client's global one).
        max_resources: distinct component names kept as label values before folding to `other`.

    Raises:
        ValueError: the registry already holds the guard's metrics (build one per registry).
    """

    def __init__(
        self, registry: CollectorRegistry | None = None, *, max_resources: int = 500
    ) -> None:
        if registry is None:
            from prometheus_client import REGISTRY

            registry = REGISTRY
        # the bound on label values: infinity (or a fraction) would be none
        max_resources = whole("max_resources", max_resources)
        self.registry = registry
        self.multiprocess = multiprocess_mode()
        reg = registry
        decision_labels = ("decision", "reason", "kind", "action", "resource", "rule", "policy")
        self.decisions: Counter | DecisionTally
        # `count(cell)` and `count_all(cells)` add 1 to cells from `decision_child`
        self.count: Callable[[Any], None]
        self.count_all: Callable[[Iterable[Any]], None]
        self.duration: Histogram | DurationTally
        if self.multiprocess:
            self.decisions = Counter(
                "mcpguard_decisions", _DECISIONS_HELP, decision_labels, registry=reg
            )
            self.count, self.count_all = _count_one, _count_each
            self.duration = Histogram(
                "mcpguard_decision_duration_seconds", _DURATION_HELP, buckets=DURATION_BUCKETS,
                registry=reg,
            )  # fmt: skip
        else:
            tally = DecisionTally("mcpguard_decisions", _DECISIONS_HELP, decision_labels, reg)
            self.decisions = tally
            self.count, self.count_all = tally.count, tally.count_all
            self.duration = DurationTally(
                "mcpguard_decision_duration_seconds", _DURATION_HELP, DURATION_BUCKETS, reg
            )
        self.auth_failures = Counter(
            "mcpguard_auth_failures",
            "Requests whose caller could not be authenticated, by authentication method.",
            ("method", "reason"),
            registry=reg,
        )
        self.reloads = Counter(
            "mcpguard_policy_reloads",
            "Policy (re)loads by result (shadow_error: a draft that did not load).",
            ("result",),
            registry=reg,
        )
        # `liveall` keeps one series per live worker (with a pid label) in multiprocess mode;
        # an Info metric cannot be used there at all.
        self.policy_info = Gauge(
            "mcpguard_policy_info",
            "The policy set in force (value 1).",
            ("hash", "version"),
            registry=reg,
            multiprocess_mode="liveall",
        )
        self.guard_errors = Counter(
            "mcpguard_guard_errors",
            "Fail-closed denials caused by an error inside the guard.",
            ("where",),
            registry=reg,
        )
        # Known label values start at 0, so rates and alerts have a series before the
        # first failure (an absent series reads as "no data", not as "no errors").
        for result in ("ok", "error"):
            self.reloads.labels(result)
        for where in GUARD_ERROR_SITES:
            self.guard_errors.labels(where)
        self.audit = AuditCollector()
        registry.register(self.audit)
        self._resource = _Folder(max_resources)
        # one budget per label, so a flood of odd reasons cannot fold away auth methods
        self._reason = _Folder(_MAX_SMALL_LABEL)
        self._policy = _Folder(_MAX_SMALL_LABEL)
        self._auth_method = _Folder(_MAX_SMALL_LABEL)
        self._auth_reason = _Folder(_MAX_SMALL_LABEL)
        self._where = _Folder(_MAX_SMALL_LABEL)
        self.children: dict[tuple[Any, ...], Any] = {}
        # Guards sharing this registry each report their own set: a series stays while any
        # of them has that set in force (`_policy_refs`), and each guard leaves only its own
        # (`_policy_held`: reporter -> labels). Reloads come from the guards' watch threads.
        self._policy_lock = threading.Lock()
        self._policy_refs: dict[tuple[str, str], int] = {}
        self._policy_held: dict[object, tuple[str, str]] = {}
        # a forked child restarts its guards' policy watchers, which report here: a lock a
        # parent's reload held at the fork would never be let go in the child
        os.register_at_fork(after_in_child=functools.partial(_forked, weakref.ref(self)))

    def _after_fork(self) -> None:
        self._policy_lock = threading.Lock()  # (a parent's reload report may have held it)
        for tally in (self.decisions, self.duration):
            if isinstance(tally, DecisionTally | DurationTally):
                tally._after_fork()

    def decision_child(
        self,
        allowed: bool,
        reason: str,
        kind: str,
        action: str,
        resource: str,
        rule: str,
        policy: str = "",
    ) -> Any:
        """The series (a cell to `count`) for one label combination, cached in `children` by
        its key.

        `labels()` costs more than the increment itself, so the hot path looks the series
        up in `children` (keyed by these arguments) and calls this only on a miss. `policy` is
        the policy of the deciding rule (or whose default decided): rule names are only
        unique within a policy.
        """
        key = (allowed, reason, kind, action, resource, rule, policy)
        child = self.children.get(key)
        if child is None:
            child = self.decisions.labels(
                "allow" if allowed else "deny",
                self._reason(reason or "unknown"),
                kind or "",
                action or "",
                self._resource(resource or ""),
                rule or "",
                self._policy(policy or ""),
            )
            self.children[key] = child
        return child

    def auth_failure(self, method: str, reason: str) -> None:
        labels = self._auth_method(method or "unknown"), self._auth_reason(reason or "unknown")
        self.auth_failures.labels(*labels).inc()

    def guard_error(self, where: str) -> None:
        self.guard_errors.labels(self._where(where or "unknown")).inc()

    def policy_reload(self, result: str, policy_set: Any, reporter: object = None) -> None:
        """Count a (re)load and show `policy_set` as in force for `reporter` (one per guard;
        `None` is the telemetry's own), in place of the set it reported before."""
        self.reloads.labels(result if result in _RELOAD_RESULTS else "error").inc()
        if policy_set is None:
            return
        labels = (str(getattr(policy_set, "hash", "") or ""), policy_version(policy_set))
        with self._policy_lock:
            if getattr(reporter, "closed", False):
                return  # released (a reload racing the guard's close): nothing in force
            left = self._policy_held.get(reporter)
            if labels == left:
                return
            self._policy_held[reporter] = labels
            refs = self._policy_refs
            refs[labels] = refs.get(labels, 0) + 1
            self.policy_info.labels(*labels).set(1)
            if left is not None:
                self._let_go(left)

    def policy_release(self, reporter: object) -> None:
        """`reporter` (a guard) has closed: the set it reported is no longer in force for
        it, and its series goes once no other guard has that set in force. Idempotent."""
        with self._policy_lock:
            left = self._policy_held.pop(reporter, None)
            if left is not None:
                self._let_go(left)

    def _let_go(self, labels: tuple[str, str]) -> None:
        """One reporter less has set `labels` in force (`_policy_lock` held)."""
        refs = self._policy_refs
        refs[labels] -= 1
        if refs[labels]:
            return  # another guard still has that set in force
        del refs[labels]
        if self.multiprocess:
            # removal is not implemented for multiprocess files: the old series would
            # keep reading 1 next to the new one; 0 marks it as no longer in force
            self.policy_info.labels(*labels).set(0)
        else:
            with contextlib.suppress(KeyError):
                self.policy_info.remove(*labels)


def policy_version(policy_set: Any) -> str:
    """`name@version` of each loaded policy, comma-joined (the policies' own versions)."""
    parts = []
    for p in getattr(policy_set, "policies", ()) or ():
        version = getattr(p, "version", None)
        name = getattr(p, "name", "?")
        parts.append(f"{name}@{version}" if version not in (None, "") else str(name))
    return ",".join(parts)
