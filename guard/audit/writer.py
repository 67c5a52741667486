"""`SegmentWriter`: one writer's hash chains and the segments they are written to.

The audit writer thread hands it row bodies (`rows.py`); it chains them (each row's hash
covers its canonical JSON, which includes the previous row's hash) and writes them as one
Parquet segment on a second thread, so DuckDB (which releases the GIL) writes a segment
while the writer thread encodes the next batch. The chain head advances optimistically;
a segment that fails resets it, and the next batch, already chained on top, is chained
again. Written segments update the writer's head file (`writers/W.json`, truncation
evidence) and are rolled up with the writer's other small segments.

Not thread-safe: one writer thread drives it.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import socket
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from guard.audit.schema import GENESIS, TABLES
from guard.audit.segments import (
    live_segments,
    staging_directory,
    write_json_atomic,
    write_segment,
)

__all__ = ["ROLLUP_FANIN", "ROLLUP_LEVELS", "ROLLUP_MAX_ROWS", "Batch", "SegmentWriter"]

logger = logging.getLogger("guard.audit")

ROLLUP_FANIN: Final = 16  # a writer merges this many of its segments into one ...
ROLLUP_LEVELS: Final = 2  # ... twice over: 256 flushes end up in one file ...
ROLLUP_MAX_ROWS: Final = 10_000  # ... if they are small: big ones are left to `compact`


@dataclass(slots=True, eq=False)
class Batch:
    """One segment on its way: rows chained from (`first`, `prev`) to (`seq`, `head`).
    `ids` are the decision ids of `decisions` rows (durable mode waits on them)."""

    table: str
    bodies: list[str]
    ids: list[str]
    first: int  # seq of the row before this batch
    prev: str  # hash of the row before this batch
    seq: int = 0
    head: str = ""
    name: str = ""
    data: bytes = b""
    thread: threading.Thread | None = None
    started: float = 0.0
    error: BaseException | None = None


class SegmentWriter:
    """Chains and writes the rows of writer `writer_id` into the store at `path`.

    Args:
        path: the store directory.
        writer_id: this writer's id (segment names, chain column `writer_id`).
        durable: fsync every segment and its directory entry before it counts as written.
        on_written: called with each batch once its segment is on disk.
        on_failed: called with each batch whose segment could not be written (the chain
            no longer includes it); the caller keeps its rows (spill file).
        write_hook: called as `write_hook(table, rows)` before each segment write; raising
            makes that write fail (fault injection in tests).

    ```python
    writer = SegmentWriter(store, wid, durable=False, on_written=done, on_failed=spill)
    writer.submit("decisions", bodies, ids)  # returns at once; written in the background
    writer.settle()                          # wait for it: on_written or on_failed has run
    ```
    """

    def __init__(
        self,
        path: Path,
        writer_id: str,
        *,
        durable: bool,
        on_written: Callable[[Batch], None],
        on_failed: Callable[[Batch], None],
        write_hook: Callable[[str, int], None] | None = None,
    ) -> None:
        self.path = path
        self.writer_id = writer_id
        self.durable = durable
        self._on_written = on_written
        self._on_failed = on_failed
        self._write_hook = write_hook
        self.staging = staging_directory()
        self.con: Any = None  # DuckDB, created by the segment thread on first use
        # chain heads: optimistic (segment in flight included) and committed (on disk)
        self._seq = dict.fromkeys(TABLES, 0)
        self._head = dict.fromkeys(TABLES, GENESIS)
        self._committed = {t: (0, GENESIS) for t in TABLES}
        self._inflight: Batch | None = None
        self._own: defaultdict[tuple[str, int], list[tuple[str, int]]] = defaultdict(list)
        # counters, read by `AuditLog.stats()`
        self.written = dict.fromkeys(TABLES, 0)
        self.segments = 0
        self.failed = 0
        self.flush_sum = 0.0
        self.flush_count = 0
        self.flush_last = 0.0
        self.store_ok = True
        self.last_error: str | None = None

    def submit(self, table: str, bodies: list[str], ids: list[str]) -> None:
        """Chain `bodies` and start writing them; the segment before is settled first
        (its chaining overlaps it)."""
        batch = Batch(table, bodies, ids, self._seq[table], self._head[table])
        self._chain(batch)
        self.settle()
        if batch.prev != self._head[table]:  # the segment before failed: chain again
            batch.first, batch.prev = self._seq[table], self._head[table]
            self._chain(batch)
        self._seq[table], self._head[table] = batch.seq, batch.head
        self._inflight = batch
        batch.started = time.perf_counter()
        batch.thread = threading.Thread(
            target=self._write, args=(batch,), name="mcp-guard-segment", daemon=True
        )
        batch.thread.start()

    def write_now(self, table: str, bodies: list[str]) -> bool:
        """Chain and write `bodies` in this thread (spill reload); on failure the chain is
        as it was and the caller still has the rows. Returns whether they were written."""
        self.settle()
        batch = Batch(table, bodies, [], self._seq[table], self._head[table])
        self._chain(batch)
        batch.started = time.perf_counter()
        self._write(batch)
        if batch.error is None:
            self._seq[table], self._head[table] = batch.seq, batch.head
            self._written(batch)
            return True
        self._failure(batch)
        return False

    def settle(self) -> None:
        """Wait for the segment in flight, if any, and account for it."""
        batch, self._inflight = self._inflight, None
        if batch is None:
            return
        if batch.thread is not None:
            batch.thread.join()
        if batch.error is None:
            self._written(batch)
            self._on_written(batch)
            return
        # undo the optimistic head: the next segment chains on from the last written row
        self._seq[batch.table], self._head[batch.table] = batch.first, batch.prev
        self._failure(batch)
        self._on_failed(batch)

    def close(self) -> None:
        """Settle, and release DuckDB."""
        self.settle()
        if self.con is not None:
            with contextlib.suppress(Exception):  # best effort at shutdown
                self.con.close()
            self.con = None

    # ------------------------------------------------------------------ internals

    def _chain(self, batch: Batch) -> None:
        """Each row is its body plus the chain columns, closed: the canonical JSON its hash
        covers (`schema.canonical`). The line DuckDB reads is that JSON with `hash` added,
        so what is stored is exactly what was hashed."""
        seq, prev = batch.first, batch.prev
        sha256 = hashlib.sha256
        link = f',"writer_id":"{self.writer_id}","seq":'
        parts: list[bytes] = []
        add = parts.append
        for body in batch.bodies:
            seq += 1
            if not seq & 255:
                yield_gil()
            text = f'{body}{link}{seq},"prev_hash":"{prev}"'
            try:
                data = text.encode()
            except UnicodeEncodeError:  # lone surrogates: stored and hashed as "?"
                data = text.encode("utf-8", "replace")
            digest = sha256(data)
            digest.update(b"}")
            prev = digest.hexdigest()
            add(data)
            add(f',"hash":"{prev}"}}\n'.encode())
        batch.data, batch.seq, batch.head = b"".join(parts), seq, prev
        batch.name = f"{self.writer_id}-{batch.first + 1:012d}.parquet"

    def _write(self, batch: Batch) -> None:
        """Segment thread: DuckDB parses the lines and writes Parquet (the GIL is free)."""
        try:
            if self._write_hook is not None:
                self._write_hook(batch.table, len(batch.bodies))
            if self.con is None:
                import duckdb

                self.con = duckdb.connect(config={"threads": 1})
            directory = self.path / batch.table
            directory.mkdir(parents=True, exist_ok=True)
            write_segment(
                self.con, directory, batch.table, batch.name, batch.data,
                fsync=self.durable, staging=self.staging,
            )  # fmt: skip
        except Exception as exc:
            batch.error = exc
        batch.data = b""

    def _failure(self, batch: Batch) -> None:
        self.failed += len(batch.bodies)
        self.store_ok = False
        self.last_error = repr(batch.error)
        logger.warning("audit segment write failed (%s); rows go to the spill file", batch.error)

    def _written(self, batch: Batch) -> None:
        table, n = batch.table, len(batch.bodies)
        self.written[table] += n
        self.segments += 1
        self.store_ok = True
        self._committed[table] = (batch.seq, batch.head)
        try:
            write_json_atomic(
                self.path / "writers" / f"{self.writer_id}.json",
                {
                    "writer_id": self.writer_id, "host": socket.gethostname(),
                    "pid": os.getpid(),
                    **{t: {"seq": c[0], "hash": c[1]} for t, c in self._committed.items()},
                },
                fsync=self.durable,
            )  # fmt: skip
        except OSError as exc:  # the rows are safe; only truncation evidence lags
            self.last_error = repr(exc)
        if n < ROLLUP_MAX_ROWS:
            self._own[(table, 0)].append((batch.name, n))
            self._roll_up(table, 0)
        elapsed = time.perf_counter() - batch.started
        self.flush_sum += elapsed
        self.flush_count += 1
        self.flush_last = elapsed

    def _roll_up(self, table: str, level: int) -> None:
        """Merge this writer's own small segments, ROLLUP_FANIN at a time, into one of the
        next level (up to ROLLUP_LEVELS), so a server leaves tens of files, not thousands.
        Rows, order and chain are unchanged; readers see the same rows throughout."""
        own = self._own[(table, level)]
        if len(own) < ROLLUP_FANIN or level >= ROLLUP_LEVELS:
            return
        from guard.audit.maintenance import maintenance_lock, replace_segments

        directory = self.path / table
        files = [f for f, _ in own]
        rows = sum(n for _, n in own)
        sources = [directory / f for f in files]
        first_seq = files[0].split("-", 1)[1][:12]
        name = f"{self.writer_id}-{first_seq}.L{level + 1}.parquet"
        listed = ", ".join("'" + str(f).replace("'", "''") + "'" for f in sources)
        try:
            with maintenance_lock(self.path, wait=False) as locked:
                if not locked:
                    return  # a compaction runs: try again after the next flush
                live = {f.name for f in live_segments(directory)}
                if not live.issuperset(files):
                    # `compact` merged some of them: they are not ours to merge any more
                    own[:] = [(f, n) for f, n in own if f in live]
                    return
                replace_segments(
                    self.con, directory, sources,
                    f"SELECT * FROM read_parquet([{listed}]) ORDER BY seq",  # noqa: S608
                    name,
                )  # fmt: skip
        except Exception as exc:
            logger.info("roll-up of %s segments skipped: %s", table, exc)
            own.clear()
            return
        own.clear()
        if rows < ROLLUP_MAX_ROWS:
            self._own[(table, level + 1)].append((name, rows))
            self._roll_up(table, level + 1)


def yield_gil() -> None:
    """Let the segment thread have the GIL for a moment. DuckDB takes it back now and then
    while it writes; a busy writer thread would make it wait a whole switch interval
    (5 ms) each time, which slowed segment writes by a quarter."""
    time.sleep(0)
