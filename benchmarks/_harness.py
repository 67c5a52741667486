"""Shared helpers for the benchmarks: time a callable, print a row next to its baseline.

Every figure is printed beside a baseline measured in the same run on the same machine,
so the ratio means something even when the machine is noisy or slow.

```python
from benchmarks._harness import header, row, time_call

ours = time_call(lambda: policies.decide(request))
seed = time_call(lambda: drive(engine.evaluate(auth, res)), max_seconds=2)
header("decision latency (median µs)")
row("decide, 1,000 rules", ours.median_us, seed.median_us)
```
"""

from __future__ import annotations

import gc
import statistics
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from time import perf_counter_ns
from typing import Any

__all__ = ["Timing", "drive", "header", "row", "time_call"]


@dataclass(frozen=True)
class Timing:
    """Per-call latency: median and 99th percentile in microseconds over `samples` calls."""

    median_us: float
    p99_us: float
    samples: int


def _timer_overhead_ns() -> float:
    clock = perf_counter_ns
    laps = []
    for _ in range(2000):
        t0 = clock()
        laps.append(clock() - t0)
    return statistics.median(laps)


def time_call(
    fn: Callable[[], Any],
    *,
    samples: int = 20_000,
    warmup: int = 200,
    max_seconds: float = 3.0,
) -> Timing:
    """Time `fn()` call by call (gc off while timing), after `warmup` untimed calls.

    Stops early once `max_seconds` of timed calls have run (slow baselines), but always
    takes at least 5 samples. The clock's own cost is subtracted.
    """
    for _ in range(warmup):
        fn()
    overhead = _timer_overhead_ns()
    budget = max_seconds * 1e9
    laps: list[float] = []
    spent = 0
    clock = perf_counter_ns
    enabled = gc.isenabled()
    gc.disable()
    try:
        for _ in range(samples):
            t0 = clock()
            fn()
            lap = clock() - t0
            laps.append(max(lap - overhead, 0.0))
            spent += lap
            if spent > budget and len(laps) >= 5:
                break
    finally:
        if enabled:
            gc.enable()
    laps.sort()
    p99 = laps[min(len(laps) - 1, int(len(laps) * 0.99))]
    return Timing(statistics.median(laps) / 1000, p99 / 1000, len(laps))


def drive(coro: Coroutine[Any, Any, Any]) -> Any:
    """Run a coroutine that never really awaits, without an event loop (no asyncio cost)."""
    try:
        coro.send(None)
    except StopIteration as stop:
        return stop.value
    coro.close()
    raise RuntimeError("coroutine suspended: it needs a real event loop")


def header(title: str, unit: str = "µs") -> None:
    """Print a table title and the column names."""
    print(f"\n## {title}")
    columns = f"{'name':<56} {'value':>12} {'baseline':>12} {'ratio':>9}"
    print(f"{columns}   ({unit}; ratio = baseline/value)")


def row(name: str, value: float, baseline: float | None = None) -> None:
    """Print `name  value  baseline  ratio`, ratio being baseline / value (> 1: faster)."""
    if baseline is None:
        print(f"{name:<56} {value:>12.2f} {'-':>12} {'-':>9}")
        return
    ratio = baseline / value if value else float("inf")
    print(f"{name:<56} {value:>12.2f} {baseline:>12.2f} {ratio:>8.1f}x")
