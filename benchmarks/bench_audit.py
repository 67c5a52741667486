"""Decision records: `AuditLog.append` on the request path, the writer's sustained ingestion,
and the default mode's loss window on `kill -9`, each beside a bare DuckDB baseline measured
in the same run.

Run: `python3 benchmarks/bench_audit.py [--rows N] [--kills K]`.
- append: median/p99 µs per call; baselines: a bare `deque.append` of the event, and a
  one-row DuckDB `INSERT` (what recording inline on the request path would cost).
- ingestion: rows/s the writer turns queued events into hash-chained rows in its hot files
  (readable, and safe from `kill -9`), and into Parquet segments (the hot files converted);
  records/s when the same number of records come as listings of 100 components;
  baseline: a bare DuckDB insert of the same rows, already built as columns, into a table
  (the batch path: numpy columns, `INSERT ... SELECT`), plus `executemany` on a slice.
- loss window: a writer process appending ~5,000 decisions/s is killed with SIGKILL K times;
  the window is the age of the oldest acknowledged record that did not survive.
"""

from __future__ import annotations

import argparse
import mmap
import random
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from collections import deque
from dataclasses import replace
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "audit"))

import duckdb  # noqa: E402
import numpy as np  # noqa: E402
from audit_kit import event, subprocess_env  # noqa: E402

from benchmarks._harness import header, row, time_call  # noqa: E402
from guard.audit import AuditLog, open_store  # noqa: E402
from guard.audit.schema import DECISION_COLUMNS, TIMESTAMP_COLUMNS  # noqa: E402
from guard.policy.model import Resource  # noqa: E402


def bench_append(tmp: Path) -> None:
    ev = event(1)
    log = AuditLog(tmp / "append", max_queue=10_000_000)
    ours = time_call(lambda: log.append(ev), samples=50_000)
    # an argument of prose, looked through for credential shapes before it is queued
    sentence = (
        "The guard decides each request against the policy in force, though the right "
        "answer for a high-risk tool is often a denial; its record says why. "
    )
    prose = event(2, args={"text": (sentence * 40)[:4000]})
    prose_us = time_call(lambda: log.append(prose), samples=5_000)
    log.close()
    bare: deque[Any] = deque()
    queue_only = time_call(lambda: bare.append(ev), samples=50_000)
    con = duckdb.connect()
    names = [n for n, _ in DECISION_COLUMNS]
    con.execute(f"CREATE TABLE t ({', '.join(f'{n} {t}' for n, t in DECISION_COLUMNS)})")
    values = _row_values(tmp)
    marks = ", ".join("?" for _ in names)
    one_row = time_call(lambda: con.execute(f"INSERT INTO t VALUES ({marks})", values),
                        samples=2000, max_seconds=3)  # fmt: skip
    header("AuditLog.append (request path)", "µs")
    row("append, median", ours.median_us, one_row.median_us)
    row("append, p99", ours.p99_us, one_row.p99_us)
    row("bare deque.append (floor)", queue_only.median_us)
    row("append, 4,000 characters of prose, median", prose_us.median_us, one_row.median_us)
    print(f"(baseline: one-row DuckDB INSERT, median {one_row.median_us:.1f} µs)")


def _row_values(tmp: Path) -> list[Any]:
    log = AuditLog(tmp / "one")
    log.append(event(1))
    log.close()
    with open_store(tmp / "one") as con:
        return list(con.execute("SELECT * FROM decisions").fetchone())


def _typed_select(source: str) -> str:
    """SQL turning a batch of Python objects (integer timestamps) into the table's types."""
    parts = [
        f"make_timestamp(CAST({n} AS BIGINT))::TIMESTAMPTZ AS {n}"
        if n in TIMESTAMP_COLUMNS
        else f"CAST({n} AS {t}) AS {n}"
        for n, t in DECISION_COLUMNS
    ]
    return f"SELECT {', '.join(parts)} FROM {source}"  # names from the schema


def bench_ingestion(tmp: Path, rows: int) -> None:
    events = [event(i, args={"city": "Paris", "i": i, "units": "metric"}) for i in range(rows)]
    # writer alone: queue everything while the writer sleeps, then time the flush
    log = AuditLog(tmp / "ingest", batch_size=10**9, flush_interval=3600, max_queue=10**9)
    for ev in events:
        log.append(ev)
    t0 = time.perf_counter()
    log.flush()
    hot_s = time.perf_counter() - t0
    log.close()  # the last hot file becomes a segment
    writer_s = time.perf_counter() - t0
    # producer and writer together: one thread appends as fast as it can
    log = AuditLog(tmp / "both", max_queue=10**9)
    t0 = time.perf_counter()
    for ev in events:
        log.append(ev)
    log.close()
    both_s = time.perf_counter() - t0
    # listings: the same number of records, as listings of 100 components (one row each)
    listing = [
        replace(ev, request=replace(ev.request, resource=Resource("tool", f"tool_{i}")))
        for i, ev in enumerate(events[:100])
    ]
    log = AuditLog(tmp / "listings", batch_size=10**9, flush_interval=3600, max_queue=10**9)
    for n in range(rows // 100):
        log.append_listing(f"listing-{n}", listing)
    t0 = time.perf_counter()
    log.flush()
    log.close()
    listings_s = time.perf_counter() - t0
    # baseline: the same rows, already built, inserted into DuckDB in one batch
    with open_store(tmp / "ingest") as store:
        data = store.execute(
            "SELECT * REPLACE (epoch_us(ts) AS ts, epoch_us(request_time) AS request_time) "
            "FROM decisions"
        ).fetchall()
    columns = list(zip(*data, strict=True))
    con = duckdb.connect()
    con.execute(f"CREATE TABLE t ({', '.join(f'{n} {t}' for n, t in DECISION_COLUMNS)})")
    t0 = time.perf_counter()
    batch = {  # noqa: F841 - read by DuckDB's replacement scan
        n: np.fromiter(c, dtype=object, count=len(c))
        for (n, _), c in zip(DECISION_COLUMNS, columns, strict=True)
    }
    con.execute(f"INSERT INTO t {_typed_select('batch')}")
    bare_s = time.perf_counter() - t0
    sample = data[:2000]
    marks = ", ".join("?" for _ in DECISION_COLUMNS)
    con.execute("CREATE TABLE u AS SELECT * FROM t LIMIT 0")
    con.execute("ALTER TABLE u ALTER ts TYPE BIGINT")
    con.execute("ALTER TABLE u ALTER request_time TYPE BIGINT")
    t0 = time.perf_counter()
    con.executemany(f"INSERT INTO u VALUES ({marks})", sample)
    many_s = time.perf_counter() - t0
    bare = rows / bare_s
    print(f"\n## sustained ingestion, {rows:,} decisions (rows/s; share = value / baseline)")
    print(f"{'name':<44} {'rows/s':>12} {'baseline':>12} {'share':>9}")
    for name, value in (
        ("writer: events -> chained rows, hot files", rows / hot_s),
        ("writer: events -> Parquet segments", rows / writer_s),
        ("append + writer -> segments (one producer)", rows / both_s),
        ("writer: listings of 100 -> segments (rec/s)", rows // 100 * 100 / listings_s),
        ("DuckDB executemany (2,000 rows)", len(sample) / many_s),
    ):
        print(f"{name:<44} {value:>12,.0f} {bare:>12,.0f} {value / bare:>8.2f}x")
    print("(baseline: a bare DuckDB batch insert of the same rows, built beforehand)")


def bench_durable(tmp: Path, concurrency: int = 16, per_task: int = 200) -> None:
    import asyncio

    async def run(log: AuditLog) -> float:
        async def task(t: int) -> None:
            for i in range(per_task):
                ev = event(t * per_task + i)
                log.append(ev)
                await log.wait_durable(ev.decision_id)

        t0 = time.perf_counter()
        await asyncio.gather(*(task(t) for t in range(concurrency)))
        return time.perf_counter() - t0

    log = AuditLog(tmp / "durable", durable=True)
    elapsed = asyncio.run(run(log))
    segments = log.stats()["writes"]
    log.close()
    total = concurrency * per_task
    print(f"\n## durable mode, {concurrency} concurrent requests (decisions/s)")
    print(f"{'committed before the tool runs':<44} {total / elapsed:>12,.0f}"
          f"   ({total / segments:.1f} decisions per fsync'd group commit)")  # fmt: skip


def bench_loss_window(tmp: Path, kills: int) -> None:
    script = ROOT / "tests" / "audit" / "writer_proc.py"
    capacity = 2_000_000
    windows, lost_counts = [], []
    for k in range(kills):
        store, ackfile = tmp / f"kill{k}", tmp / f"ack{k}"
        ackfile.write_bytes(b"\0" * (8 + 8 * capacity))
        cmd = [sys.executable, str(script), str(store), str(ackfile), "default", "0.0002"]
        proc = subprocess.Popen(cmd, env=subprocess_env(), stdout=subprocess.PIPE)
        assert proc.stdout is not None
        proc.stdout.readline()
        time.sleep(1.0 + random.random())
        proc.kill()
        killed_at = time.time()
        proc.wait()
        with open(ackfile, "rb") as fh, mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as m:
            count = struct.unpack_from("q", m, 0)[0]
            times = struct.unpack_from(f"{count}d", m, 8)
        with open_store(store) as con:
            have = con.execute("SELECT count(*) FROM decisions").fetchone()[0]
        lost = count - have
        lost_counts.append(lost)
        windows.append(killed_at - times[have] if lost > 0 else 0.0)
    if not kills:
        return
    header(f"kill -9 loss window, default mode ({kills} kills)", "s")
    row("worst window", max(windows))
    row("median window", statistics.median(windows))
    print(f"(acknowledged records lost per kill: {lost_counts})")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--kills", type=int, default=5)
    opts = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        bench_append(Path(tmp))
        bench_ingestion(Path(tmp), opts.rows)
        bench_durable(Path(tmp))
        bench_loss_window(Path(tmp), opts.kills)


if __name__ == "__main__":
    main()
