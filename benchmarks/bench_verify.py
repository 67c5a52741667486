"""`verify` on a sound store: its one pass against the walk in chain order it falls back to.

Run: `python3 benchmarks/bench_verify.py [--rows N]` (default 300,000 decisions from two
writers, a third as many outcomes). The store is verified as written (a segment per
flush) and again once compacted into merged files, each time in a process of its own
(peak RSS is the whole process's) three ways: the walk in chain order that DuckDB sorts,
which `verify` makes only when a chain is broken (forced here by taking the one pass
away); the one pass it makes over a sound store, in its own process only; and the same
shared among as many processes as it may use cores (up to 8), as it does for a table of
4 MB of Parquet or more (its files shared out whole: one merged file is read by one). All
must agree that the store is sound.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests" / "audit")]


def _fill(store: Path, rows: int) -> None:
    from audit_kit import event

    from guard.audit import AuditLog

    for w in range(2):
        log = AuditLog(store, batch_size=5000, max_queue=10**9)
        for i in range(w * rows // 2, (w + 1) * rows // 2):
            ev = event(i, args={"city": "Paris", "i": i, "units": "metric"})
            log.append(ev)
            if i % 3 == 0:
                log.append_outcome(ev.decision_id, "ok", 12.5, None)
        log.close()


def _child(store: str, how: str) -> None:
    from guard.audit import verify

    module = sys.modules["guard.audit.verify"]
    if how == "walk":  # as when the one pass finds something wrong
        module._sound_chains = lambda *args: None  # type: ignore[attr-defined]
    elif how == "alone":  # in this process only
        module._MAX_WORKERS = 1  # type: ignore[attr-defined]
    t0 = time.perf_counter()
    report = verify(store)
    seconds = time.perf_counter() - t0
    # this process's own peak: `ru_maxrss` would start from its parent's at the fork
    status = Path("/proc/self/status").read_text().splitlines()
    peak_mb = next(int(line.split()[1]) for line in status if line.startswith("VmHWM")) / 1024
    worker_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    print(json.dumps({"ok": report.ok, "rows": report.rows, "s": seconds, "mb": peak_mb,
                      "worker_mb": worker_mb}))  # fmt: skip


def _measure(store: Path, how: str) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, __file__, "--child", str(store), how],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    result: dict[str, float] = json.loads(out.splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=300_000)
    parser.add_argument("--child", nargs=2, metavar=("STORE", "HOW"))
    opts = parser.parse_args()
    if opts.child:
        _child(*opts.child)
        return
    from guard.audit import compact

    cores = min(len(os.sched_getaffinity(0)), 8)  # as `verify` counts them (at most 8)
    work = Path(tempfile.mkdtemp(prefix="bench-verify-"))
    try:
        store = work / "store"
        t0 = time.perf_counter()
        _fill(store, opts.rows)
        print(f"(a store of {opts.rows:,} decisions written in {time.perf_counter() - t0:.0f} s)")
        print(f"\n## verify a sound store of {opts.rows:,} decisions (and their outcomes)")
        print(f"{'store':<12} {'how':<28} {'rows':>10} {'seconds':>8} {'vs walk':>8} "
              f"{'peak RSS':>10} {'vs walk':>8} {'worker':>8}")  # fmt: skip
        for label in ("as written", "compacted"):
            if label == "compacted":
                compact(store, grace=0)
            walk = _measure(store, "walk")
            alone = _measure(store, "alone")
            one = _measure(store, "one")
            assert all(m["ok"] and m["rows"] == walk["rows"] for m in (walk, alone, one))
            for how, m in (
                ("walk in chain order", walk),
                ("one pass, this process", alone),
                (f"one pass, {cores} processes", one),
            ):
                worker = f"{m['worker_mb']:>5,.0f} MB" if how.endswith("processes") else ""
                print(f"{label:<12} {how:<28} {m['rows']:>10,.0f} {m['s']:>8.1f} "
                      f"{m['s'] / walk['s']:>7.2f}x {m['mb']:>7,.0f} MB "
                      f"{m['mb'] / walk['mb']:>7.2f}x {worker:>8}")  # fmt: skip
        print(
            "(peak RSS of the verifying process, and of its largest worker; each worker has "
            "its own: with N processes, up to N - 1 of those more)"
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
