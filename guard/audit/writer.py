"""`SegmentWriter`: one writer's hash chains, its hot files and the segments they become.

The audit writer thread hands it row bodies (`rows.py`); it chains them (each row's hash
covers its canonical JSON, which includes the previous row's hash) and appends them to the
table's hot file with one `write` (fsync'd in durable mode), on a write thread while the
next batch is encoded: from then on they survive the process being killed, and readers
see them. A hot file becomes an immutable Parquet segment once it holds `hot_rows` rows or
`HOT_MAX_BYTES`, or is `hot_age` seconds old; a converter thread does that with DuckDB
(which releases the GIL), so a flush costs one `write`, not a segment's fixed ~3 ms.
Small segments (quiet servers) are rolled up with the writer's others. The writer's head
file (`writers/W.json`, truncation evidence) follows each write.

Not thread-safe: one writer thread drives it (the write and converter threads only touch
the batch and the files they were handed).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import logging
import os
import socket
import threading
import time
from collections import defaultdict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from guard.audit.schema import GENESIS, TABLES
from guard.audit.segments import (
    HOT_SUFFIX,
    SEGMENT_SUFFIX,
    connect,
    convert_hot,
    drop_converted_hot,
    file_origin,
    fsync_dir,
    live_segments,
    names_file,
    remove_quietly,
    sql_paths,
    write_json_atomic,
)

__all__ = [
    "CONVERTED_GRACE_SECONDS",
    "HOT_MAX_AGE",
    "HOT_MAX_BYTES",
    "HOT_MAX_ROWS",
    "ROLLUP_FANIN",
    "ROLLUP_LEVELS",
    "ROLLUP_MAX_ROWS",
    "Batch",
    "SegmentWriter",
]

logger = logging.getLogger("guard.audit")

HOT_MAX_ROWS: Final = 25_000  # a hot file becomes a segment at this many rows ...
HOT_MAX_BYTES: Final = 64 * 1024 * 1024  # ... or this size (listings are big rows) ...
HOT_MAX_AGE: Final = 30.0  # ... or this many seconds after its first row
ROLLUP_FANIN: Final = 16  # a writer merges this many of its small segments into one ...
ROLLUP_LEVELS: Final = 2  # ... twice over ...
ROLLUP_MAX_ROWS: Final = 10_000  # ... if they are small: big ones are left to `compact`
_RETRY_SECONDS: Final = 1.0  # a conversion that failed is tried again after this long
_THREAD_MIN_BYTES: Final = 1 << 20  # smaller writes (durable group commits) stay inline
# A converted hot file stays this long beside its segment (readers skip it) before the
# writer deletes it: a relation (`store.sql(...)`) lists the files when it is made and
# opens them when it is fetched, and must still find a hot file converted in between.
# Hot rows take ~10 times the space of Parquet ones, hence less than `compact`'s 120 s.
CONVERTED_GRACE_SECONDS: Final = 30.0
# A sealed hot file whose conversion has failed this long is left to `compact` (the writer
# lets go of its lock and goes on with its next files): half of `compact`'s orphan age.
HANDOVER_SECONDS: Final = 300.0


@dataclass(slots=True, eq=False)
class Batch:
    """Rows on their way: chained from (`first`, `prev`) to (`seq`, `head`). `ids` are the
    decision ids of `decisions` rows (durable mode waits on them)."""

    table: str
    bodies: list[str]
    ids: list[str]
    first: int  # seq of the row before this batch
    prev: str  # hash of the row before this batch
    seq: int = 0
    head: str = ""
    data: bytes = b""
    size: int = 0  # bytes written
    started: float = field(default_factory=time.perf_counter)
    thread: threading.Thread | None = None
    error: BaseException | None = None
    # a failed write whose lines could not be cut back off the file: how many complete
    # lines it left there (they are stored), and the hash of the last of them
    kept: int = 0
    kept_head: str = ""
    # durable mode: its rows were fsync'd (not so the lines a failed write kept)
    synced: bool = True


@dataclass(slots=True, eq=False)
class _Hot:
    """An open hot file: `rows` and `size` written so far, `opened` (monotonic). Sealed, it
    keeps `fd` (and its lock) until converted; -1 once closed."""

    path: Path
    fd: int
    opened: float
    rows: int = 0
    size: int = 0
    failing_since: float | None = None  # monotonic time of its first failed conversion


class SegmentWriter:
    """Chains the rows of writer `writer_id` into hot files and segments of the store `path`.

    Args:
        path: the store directory.
        writer_id: this writer's id (file names, chain column `writer_id`).
        durable: fsync every write (and each new file's directory entry) before it counts.
        on_written: called with each batch once its rows are in the hot file.
        on_failed: called with each batch that could not be written (the chain no longer
            includes it); the caller keeps its rows (spill file).
        write_hook: called as `write_hook(table, rows)` before each write; raising makes
            that write fail (fault injection in tests).
        hot_rows: rows after which a hot file becomes a segment.
        hot_age: seconds after its first row that a hot file becomes a segment.

    ```python
    from pathlib import Path
    from guard.audit.rows import OUTCOME, outcome_body

    written = []
    writer = SegmentWriter(Path("store"), "w1", durable=False, on_written=written.append,
                           on_failed=print)  # the audit writer spills failed batches
    writer.submit("outcomes", [outcome_body((OUTCOME, "d1", 1, "ok", 2.5, None))], [])
    writer.tick()   # after each flush: on_written / on_failed has run; converts what is due
    writer.close()  # every hot file becomes a Parquet segment
    assert written[0].seq == 1 and list(Path("store/outcomes").glob("w1-*.parquet"))
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
        hot_rows: int = HOT_MAX_ROWS,
        hot_age: float = HOT_MAX_AGE,
    ) -> None:
        self.path = path
        self.writer_id = writer_id
        self.durable = durable
        self.hot_rows = hot_rows
        self.hot_age = hot_age
        self.converted_grace = CONVERTED_GRACE_SECONDS
        self._on_written = on_written
        self._on_failed = on_failed
        self._write_hook = write_hook
        self.con: Any = None  # DuckDB, created by the converter on first use
        self._host = socket.gethostname()
        self._seq = dict.fromkeys(TABLES, 0)
        self._head = dict.fromkeys(TABLES, GENESIS)
        self._hot: dict[str, _Hot] = {}
        self._sealed: deque[tuple[str, _Hot]] = deque()  # waiting for conversion
        # hot files converted (monotonic time, path), deleted once `converted_grace` passed
        self._converted: deque[tuple[float, Path]] = deque()
        self._next_sweep = 0.0  # monotonic: next look for those closed writers left
        self._inflight: Batch | None = None  # the write on the write thread
        self._submitting: Batch | None = None  # chained, waiting for the write before
        self._converter: threading.Thread | None = None
        self._retry_at = 0.0
        self._own: defaultdict[tuple[str, int], list[tuple[str, int]]] = defaultdict(list)
        # the policy sets whose texts this writer filed (or found filed): its head lists
        # them, so `verify` tells texts deleted from texts never filed
        self.policies: set[str] = set()
        # counters, read by `AuditLog.stats()`
        self.written = dict.fromkeys(TABLES, 0)
        self.segments = 0
        self.failed = 0
        self.convert_failures = 0
        self.flush_sum = 0.0
        self.flush_count = 0
        self.flush_last = 0.0
        self.store_ok = True
        self.last_error: str | None = None

    def submit(self, table: str, bodies: list[str], ids: list[str]) -> None:
        """Chain `bodies` and start appending them to `table`'s hot file on a write thread
        (the kernel copies them while this thread encodes the next batch). The write before
        is settled first: `on_written` or `on_failed` runs for it."""
        batch = Batch(table, bodies, ids, self._seq[table], self._head[table])
        self._submitting = batch
        try:
            self._chain(batch)
            self.settle()
            if batch.prev != self._head[table]:  # the write before failed: chain again
                batch.first, batch.prev = self._seq[table], self._head[table]
                self._chain(batch)
            self._make_room(batch)
        except BaseException:  # not handed over (nor chained): the caller keeps its rows
            self._submitting = None
            raise
        self._seq[table], self._head[table] = batch.seq, batch.head  # undone if it fails
        self._inflight, self._submitting = batch, None
        if len(batch.data) < _THREAD_MIN_BYTES:  # a thread costs more than it would save
            self._write_batch(batch)
            return
        thread = threading.Thread(
            target=self._write_batch, args=(batch,), name="mcp-guard-write", daemon=True
        )
        try:
            thread.start()
        except RuntimeError:  # at the process's thread limit: written here, not lost
            self._write_batch(batch)  # (an unstarted thread in flight could not be joined)
            return
        batch.thread = thread

    def write_now(self, table: str, bodies: list[str]) -> int:
        """Chain and write `bodies` in this thread (spill reload), `hot_rows` at a time (a
        long outage spills far more than a hot file holds). Returns how many were written:
        all, or on failure the slices before it and, rarely, a first few of its own (see
        `_write`); the caller still has the rest."""
        self.settle()
        written = 0
        for start in range(0, len(bodies), self.hot_rows):
            part = bodies[start : start + self.hot_rows]
            batch = Batch(table, part, [], self._seq[table], self._head[table])
            self._chain(batch)
            self._seq[table], self._head[table] = batch.seq, batch.head
            self._make_room(batch)
            self._write_batch(batch)
            if not self._account(batch):
                return written + batch.kept
            written += len(part)
        return written

    def _make_room(self, batch: Batch) -> None:
        """Seal the table's hot file if `batch` would take it past `hot_rows` rows or
        `HOT_MAX_BYTES`: the batch starts the next one, so a hot file (and its segment)
        never holds more than that, unless one batch does on its own. (Sealed after the
        write instead, a file of 24,999 rows took a whole batch more.)"""
        hot = self._hot.get(batch.table)
        if (
            hot is not None
            and hot.rows
            and (
                hot.rows + len(batch.bodies) > self.hot_rows
                or hot.size + len(batch.data) > HOT_MAX_BYTES
            )
        ):
            self._seal(batch.table)
            self._convert(wait=False)

    def settle(self) -> None:
        """Wait for the write in flight, if any; `on_written` or `on_failed` runs for it."""
        batch = self._inflight
        if batch is None:
            return
        if batch.thread is not None:
            batch.thread.join()  # (a stuck write stays in `unsettled` meanwhile)
        self._inflight = None
        if self._account(batch):
            self._on_written(batch)
        else:
            self._on_failed(batch)

    def unsettled(self) -> list[Batch]:
        """The batches submitted whose outcome is not known yet: the write in flight and
        the one waiting for it. Read from another thread when the writer thread is stuck
        in a write (`AuditLog.close` keeps their rows)."""
        return [b for b in (self._inflight, self._submitting) if b is not None]

    def tick(self) -> None:
        """After a flush: settle its last write; hot files old enough become segments,
        and those converted long enough ago go."""
        self.settle()
        now = time.monotonic()
        self._drop_converted(now - self.converted_grace)
        if now >= self._next_sweep:  # what writers left at `close()`, its grace over now
            self._next_sweep = now + self.converted_grace
            for table in TABLES:
                drop_converted_hot(self.path / table, self.converted_grace)
        for table, hot in list(self._hot.items()):
            if now - hot.opened >= self.hot_age:
                self._seal(table)
        self._convert(wait=False)

    def close(self) -> None:
        """Turn every hot file into a segment (what cannot be converted stays readable in
        its hot file; `compact` converts it later), and release DuckDB.

        The hot files converted within `converted_grace` stay beside their segments
        (readers skip them): a query that listed one opens it only as its rows are
        fetched, and this is when readers most likely listed the newest. The writers
        still running (and the next to start), or `compact`, delete them later."""
        self.settle()
        for table in list(self._hot):
            self._seal(table)
        self._retry_at = 0.0
        self._convert(wait=True)
        for _, hot in self._sealed:  # not converted: `compact` may take them now
            _close(hot)
        self._drop_converted(time.monotonic() - self.converted_grace)
        if self.con is not None:
            with contextlib.suppress(Exception):  # best effort at shutdown
                self.con.close()
            self.con = None

    def yield_gil(self) -> None:
        """Let the converter thread have the GIL for a moment, if it is converting: DuckDB
        takes it back now and then while it writes, and a busy writer thread would make it
        wait a whole switch interval (5 ms) each time. (With no conversion running, the
        request threads get the GIL at the switch interval as usual.)"""
        converter = self._converter
        if converter is not None and converter.is_alive():
            time.sleep(0)

    def _drop_converted(self, before: float) -> None:
        """Delete the hot files converted before `before` (monotonic)."""
        converted = self._converted
        while converted and converted[0][0] <= before:
            remove_quietly(converted.popleft()[1])

    def forget(self) -> None:
        """In a forked child: close the parent's hot files, sealed ones too, without
        touching them (the parent still writes or converts them; the child's copies would
        keep their locks held after the parent let go)."""
        for hot in (*self._hot.values(), *(hot for _, hot in self._sealed)):
            _close(hot)
        self._hot.clear()
        self._sealed.clear()

    # ------------------------------------------------------------------ internals

    def _chain(self, batch: Batch) -> None:
        """Each row is its body plus the chain columns, closed: the canonical JSON its hash
        covers (`schema.canonical`). The line stored is that JSON with `hash` added, so
        what is stored is exactly what was hashed."""
        seq, prev = batch.first, batch.prev
        sha256 = hashlib.sha256
        link = f',"writer_id":"{self.writer_id}","seq":'
        parts: list[bytes] = []
        add = parts.append
        for body in batch.bodies:
            seq += 1
            if not seq & 255:
                self.yield_gil()
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

    def _write_batch(self, batch: Batch) -> None:
        """Append the batch's lines to its table's hot file (write thread, or the writer
        thread for spill reloads); `_account` deals with the outcome."""
        data, batch.data = batch.data, b""
        try:
            if self._write_hook is not None:
                self._write_hook(batch.table, len(batch.bodies))
            hot = self._hot.get(batch.table)
            if hot is not None and not names_file(hot.path, hot.fd):
                # the store (or the file) was deleted, moved or replaced: rows appended
                # there would reach no reader. Its rows go with it (`verify` says so);
                # the next ones start a new hot file at the store's path.
                del self._hot[batch.table]
                _close(hot)
                hot = None
                logger.warning(
                    "audit hot file %s was deleted, moved or replaced (its rows with it); "
                    "writing on in a new one",
                    batch.table,
                )
            if hot is None:
                hot = self._open(batch.table, batch.first + 1)
            self._write(batch.table, hot, data, batch)
            batch.size = len(data)
        except Exception as exc:
            batch.error = exc

    def _account(self, batch: Batch) -> bool:
        """Count a finished write; a failed one is taken out of the chain. Returns whether
        it was written."""
        table = batch.table
        if batch.error is not None:
            self._seq[table], self._head[table] = batch.first, batch.prev
            if batch.kept:  # its first lines are in the (sealed) hot file: they count
                n = batch.kept
                kept = Batch(table, batch.bodies[:n], batch.ids[:n], batch.first, batch.prev)
                kept.seq, kept.head = batch.first + n, batch.kept_head
                kept.synced = False  # the write or its fsync failed: stored, not durable
                self._seq[table], self._head[table] = kept.seq, kept.head
                self._written(kept)  # (head file too)
                self._on_written(kept)
                batch.bodies, batch.ids = batch.bodies[n:], batch.ids[n:]
                batch.first, batch.prev = kept.seq, kept.head
            self.failed += len(batch.bodies)
            self.store_ok = False
            self.last_error = repr(batch.error)
            logger.warning("audit write failed (%s); rows go to the spill file", batch.error)
            return False
        hot = self._hot[table]
        hot.rows += len(batch.bodies)
        hot.size += batch.size
        self._written(batch)
        if hot.rows >= self.hot_rows or hot.size >= HOT_MAX_BYTES:
            self._seal(table)
            self._convert(wait=False)
        return True

    def _open(self, table: str, first: int) -> _Hot:
        directory = self.path / table
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / f"{self.writer_id}-{first:012d}{HOT_SUFFIX}"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o666)
        # Held while the file is open (released by the kernel if the process dies):
        # `compact` never converts a hot file its writer may still append to.
        with contextlib.suppress(OSError):  # no locks here: `compact` goes by age alone
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        try:
            os.ftruncate(fd, 0)  # only a write that failed can have left anything here
            if self.durable:
                fsync_dir(directory)
        except OSError:
            os.close(fd)
            raise
        hot = self._hot[table] = _Hot(path, fd, time.monotonic())
        return hot

    def _write(self, table: str, hot: _Hot, data: bytes, batch: Batch) -> None:
        """Append `data` whole, or not at all: a failed write is cut back off the file. If
        even that fails, the file is closed there and converted as it is: readers and
        conversion skip a broken last line, and the complete lines that made it in are
        rows of the chain (`batch.kept`): only the rest of the batch is written again."""
        view = memoryview(data)
        try:
            while view:
                view = view[os.write(hot.fd, view) :]
            if self.durable:
                os.fsync(hot.fd)
        except OSError:
            try:
                os.ftruncate(hot.fd, hot.size)
            except OSError:
                landed = data[: len(data) - len(view)]
                batch.kept = landed.count(b"\n")
                if batch.kept:  # each line ends with ',"hash":"<64 hex>"}'
                    end = landed.rindex(b"\n")
                    batch.kept_head = landed[end - 66 : end - 2].decode()
                self._seal(table)
            raise

    def _written(self, batch: Batch) -> None:
        self.written[batch.table] += len(batch.bodies)
        self.store_ok = True
        try:
            # Not fsync'd, even in durable mode: it is written after the rows it names are
            # on disk, so a crash can leave it behind them or unreadable (`verify` then
            # has less evidence) but never ahead of them, and a durable commit pays one
            # fsync, not two.
            head: dict[str, Any] = {
                "writer_id": self.writer_id, "host": self._host, "pid": os.getpid(),
                **{t: {"seq": self._seq[t], "hash": self._head[t]} for t in TABLES},
            }  # fmt: skip
            if self.policies:
                head["policies"] = sorted(self.policies)
            write_json_atomic(self.path / "writers" / f"{self.writer_id}.json", head)
        except OSError as exc:  # the rows are safe; only truncation evidence lags
            self.last_error = repr(exc)
        elapsed = time.perf_counter() - batch.started
        self.flush_sum += elapsed
        self.flush_count += 1
        self.flush_last = elapsed

    def _seal(self, table: str) -> None:
        """Stop writing `table`'s hot file; it waits for conversion (an empty one goes).
        It stays open, and so locked, until converted: `compact` would otherwise take it
        for a dead writer's and convert it as well, and its rows would be stored twice if
        one of the two segments was merged away before the other landed."""
        hot = self._hot.pop(table, None)
        if hot is None:
            return
        if hot.rows:
            self._sealed.append((table, hot))
        else:
            _close(hot)
            remove_quietly(hot.path)

    def _convert(self, *, wait: bool) -> None:
        """Start converting the sealed hot files on the converter thread (one at a time),
        unless it is busy; with `wait`, convert everything before returning."""
        running = self._converter
        if running is not None:
            if not wait and running.is_alive():
                return
            running.join()
            self._converter = None
        if not self._sealed or (not wait and time.monotonic() < self._retry_at):
            return
        if wait:
            self._convert_sealed()
            return
        converter = threading.Thread(
            target=self._convert_sealed, name="mcp-guard-convert", daemon=True
        )
        try:
            converter.start()
        except RuntimeError as exc:  # at the process's thread limit: retried later, as a
            # failed conversion is (an unstarted thread kept here could never be joined)
            self.convert_failures += 1
            self.last_error = repr(exc)
            self._retry_at = time.monotonic() + _RETRY_SECONDS
            logger.warning("audit segment conversion not started (%s); will retry", exc)
            return
        self._converter = converter

    def _convert_sealed(self) -> None:
        """Converter thread: each sealed hot file becomes a segment, in order."""
        while self._sealed:
            table, hot = self._sealed[0]
            path, rows = hot.path, hot.rows
            if not path.exists():  # `compact` converted it (its lock was let go, see below)
                _close(hot)
                self._sealed.popleft()
                continue
            try:
                if self.con is None:
                    self.con = connect(threads=1)
                segment = convert_hot(
                    self.con, path.parent, table, path, fsync=self.durable, keep=True
                )
            except Exception as exc:  # the rows stay readable in the hot file: retry later
                self.convert_failures += 1
                self.last_error = repr(exc)
                now = time.monotonic()
                if hot.failing_since is None:
                    hot.failing_since = now
                if now - hot.failing_since >= HANDOVER_SECONDS:
                    # one file must not hold up every later one: `compact` takes it
                    logger.warning(
                        "audit segment conversion of %s keeps failing (%s); left to "
                        "`mcp-guard compact`, its rows stay readable meanwhile",
                        path.name,
                        exc,
                    )
                    _close(hot)
                    self._sealed.popleft()
                    continue
                self._retry_at = now + _RETRY_SECONDS
                logger.warning("audit segment conversion failed (%s); will retry", exc)
                return
            _close(hot)
            self._sealed.popleft()
            self._converted.append((time.monotonic(), path))
            self.segments += 1
            if rows < ROLLUP_MAX_ROWS:
                self._own[(table, 0)].append((segment.name, rows))
                self._roll_up(table, 0)

    def _roll_up(self, table: str, level: int) -> None:
        """Merge this writer's own small segments, ROLLUP_FANIN at a time, into one of the
        next level (up to ROLLUP_LEVELS), so a quiet server leaves tens of files, not
        thousands. Rows, order and chain are unchanged; readers see the same rows."""
        own = self._own[(table, level)]
        if len(own) < ROLLUP_FANIN or level >= ROLLUP_LEVELS:
            return
        from guard.audit.maintenance import maintenance_lock, replace_segments

        directory = self.path / table
        files = [f for f, _ in own]
        rows = sum(n for _, n in own)
        sources = [directory / f for f in files]
        origin = file_origin(files[0])
        if origin is None:  # pragma: no cover - this writer names its own files
            return
        name = f"{self.writer_id}-{origin[1]:012d}.L{level + 1}{SEGMENT_SUFFIX}"
        listed = sql_paths(sources)
        try:
            with maintenance_lock(self.path, wait=False) as locked:
                if not locked:
                    return  # a compaction runs: try again after the next conversion
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
        if rows < ROLLUP_MAX_ROWS and level + 1 < ROLLUP_LEVELS:  # (the top is never merged)
            self._own[(table, level + 1)].append((name, rows))
            self._roll_up(table, level + 1)


def _close(hot: _Hot) -> None:
    """Close a hot file's descriptor (letting go of its lock), once."""
    fd, hot.fd = hot.fd, -1
    if fd >= 0:
        with contextlib.suppress(OSError):
            os.close(fd)
