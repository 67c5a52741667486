"""`AuditLog`: decision records leave the request path through a bounded queue and one
background writer thread that writes them, in batches, to the store (a hot file per table,
converted to immutable Parquet segments as it fills).

On the request path `append` redacts the arguments, takes a timestamp and queues a tuple:
no I/O, no JSON, no hashing. The writer thread turns a batch into rows (`rows.py`) and
hands them to its `SegmentWriter` (`writer.py`), which chains them and appends them to the
table's hot file with one write. When the queue is full or the store refuses a write, rows
go to a local spill file and are loaded back once the store accepts writes again; every
spill and failure is counted in `stats()`.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import hashlib
import json
import logging
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from guard._ids import uuid7
from guard.audit import _process
from guard.audit.itemsets import CLAIM_SECONDS, claim, named_in
from guard.audit.redact import Redactor
from guard.audit.rows import (
    DECISION,
    LISTING,
    OUTCOME,
    Answers,
    Repeat,
    RowBuilder,
    inline_items,
    outcome_body,
    set_items,
    set_reference,
)
from guard.audit.schema import TABLES, itemset_line
from guard.audit.segments import fsync_dir, write_atomic
from guard.audit.spill import SpillFile
from guard.audit.writer import HOT_MAX_AGE, HOT_MAX_ROWS, Batch, SegmentWriter

if TYPE_CHECKING:
    from collections.abc import Sequence

    from guard.events import DecisionEvent

__all__ = ["DEFAULT", "DEFAULT_PATH", "AuditLog", "resolve_audit"]

logger = logging.getLogger("guard.audit")

DEFAULT_PATH: Final = "./mcp-guard-audit.duckdb"
ENV_VAR: Final = "MCP_GUARD_AUDIT"


class _Default:
    __slots__ = ()

    def __repr__(self) -> str:
        return "guard.audit.DEFAULT"


DEFAULT: Final = _Default()
"""`audit=DEFAULT`: `$MCP_GUARD_AUDIT` if set (`off` switches records off), else
`./mcp-guard-audit.duckdb`."""

# A backlog is encoded, chained and written a slice at a time: one slice is written while
# the next is encoded, and ~6 MB of rows stay in the CPU's caches between the three steps
# (25,000-row slices ingested ~10% fewer rows a second).
WRITE_MAX_ROWS: Final = 5_000  # rows per write when a flush has more ...
WRITE_MAX_CHARS: Final = 8 * 1024 * 1024  # ... and listings per write (a backlog of big
# listings must not be encoded all at once: 25,000 listings of 100 tools are 700 MB)
_MAX_ITEMSETS: Final = 65_536  # item sets a writer remembers having claimed
_RELOAD_RETRY_SECONDS: Final = 1.0  # how often a failing store is retried without traffic
# close() waits this long for the spill file, which a load-back holds while the store's write
# hangs; then it spills what is left to a file of its own (see `_spill_leftovers`)
_CLOSE_SPILL_WAIT: Final = 1.0


def resolve_audit(audit: Any = DEFAULT) -> AuditLog | None:
    """Turn the `audit=` argument of the middleware and factories into an `AuditLog`.

    Args:
        audit: a store path (`str` / `Path`), an `AuditLog` (used as is), `None` (no
            records), or `DEFAULT`.

    ```python
    log = resolve_audit("records.duckdb")  # a store directory named records.duckdb
    resolve_audit(None)  # None: records switched off
    ```
    """
    if audit is None or isinstance(audit, AuditLog):
        return audit
    if audit is DEFAULT:
        env = os.environ.get(ENV_VAR, "").strip()
        if env.lower() in {"off", "none", "0", "false"}:
            return None
        return AuditLog(env or DEFAULT_PATH)
    if isinstance(audit, str | os.PathLike):
        return AuditLog(audit)
    raise TypeError(
        f"audit= takes a path, an AuditLog, None or DEFAULT, not {type(audit).__name__}"
    )


class AuditLog:
    """Decision records for one process: queue, background writer, spill, chain.

    Args:
        path: the store directory (created if missing). Several processes may share it:
            each writes its own segments.
        redact_paths: extra sensitive argument paths (see `Redactor`).
        redactor: a configured `Redactor` (overrides `redact_paths`).
        claims: allow-list of token claim names to record (default: what the
            authenticator already allow-listed into `Principal.claims`).
        durable: commit each `tools/call` decision (fsync) before the tool runs; the
            middleware awaits `wait_durable(decision_id)`. Concurrent requests share fsyncs.
        batch_size: records that trigger a flush before the interval is up.
        flush_interval: seconds between flushes when traffic is light (each flush is one
            write per table: it bounds what a `kill -9` can lose).
        max_queue: queued records above which `append` spills to disk instead of
            queueing (a listing counts one per component: memory stays bounded).
        spill_dir: where spill files live (default `PATH/spill`).
        write_hook: called as `write_hook(table, rows)` before every write; raising makes
            that write fail (fault injection in tests).
        segment_rows: rows a hot file gathers before it becomes a Parquet segment ...
        segment_age: ... or seconds after its first row (and at `close`). Readers parse hot
            rows as JSON, so smaller files read faster; bigger ones cost less to write.

    ```python
    log = AuditLog("records.duckdb")
    log.append(event)  # from the middleware, once per decision
    log.flush()
    log.close()
    ```
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        redact_paths: Iterable[str] = (),
        redactor: Redactor | None = None,
        claims: Iterable[str] | None = None,
        durable: bool = False,
        batch_size: int = 5000,
        flush_interval: float = 0.5,
        max_queue: int = 200_000,
        spill_dir: str | os.PathLike[str] | None = None,
        write_hook: Callable[[str, int], None] | None = None,
        segment_rows: int = HOT_MAX_ROWS,
        segment_age: float = HOT_MAX_AGE,
    ) -> None:
        if min(batch_size, max_queue, flush_interval, segment_rows, segment_age) <= 0:
            raise ValueError(
                "batch_size, max_queue, flush_interval, segment_rows and segment_age must "
                "be positive"
            )
        self._segment_rows = segment_rows
        self._segment_age = segment_age
        self.path = Path(path).absolute()  # the process may change directory later
        self.writer_id = uuid7().replace("-", "")
        self.durable = durable
        self._redactor = redactor or Redactor(redact_paths)
        self._rows = RowBuilder(self._redactor, claims)
        self._batch = batch_size
        self._interval = flush_interval
        self._max_queue = max_queue
        self._write_hook = write_hook
        self._queue: deque[tuple[Any, ...]] = deque()
        # records queued beyond one per item: a listing's components after its first
        self._extra = 0
        self._extra_lock = threading.Lock()
        self._wake = threading.Event()
        self._flush_waiters: list[threading.Event] = []
        self._flush_lock = threading.Lock()
        self._stopping = False
        self._closed = False
        self._writer = self._new_writer()  # chains and segments, writer thread only
        self._taken = _Slice([])  # what the writer thread took from the queue
        # close() and the writer thread agree on who lets go of the spill file
        self._handover = threading.Lock()
        self._finished = False  # the writer thread is past its last write
        self._abandoned = False  # close() gave up waiting for it
        self._last_reload = 0.0
        # the spill file may hold rows the store already has (adopted from a writer that
        # died while loading them back, or left by a rewrite that failed): checked first
        self._spill_suspect = False
        self._unsaved: list[tuple[str, list[str], list[str]]] = []
        self._given_up: set[int] = set()  # ids of batches close() spilled mid-write
        self._policies_pending: list[tuple[str, bytes]] = []
        self._policies_seen: set[str] = set()
        # item sets claimed (`itemsets/`), with the monotonic time of the claim, writer
        # thread only: a listing whose items are one of them names it instead of holding
        # its items (see `schema.LISTING_COLUMNS`), for `CLAIM_SECONDS` after the claim
        self._itemsets: dict[str, float] = {}
        # durable mode: decision ids whose record is not yet on disk, and who waits for them
        self._pending: set[str] = set()
        self._waiters: dict[str, tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]] = {}
        # reentrant: a SIGTERM handler's close() can run while this thread holds it
        self._durable_lock = threading.RLock()
        # counters (read by stats(); telemetry turns them into metrics at scrape time)
        self._spilled = 0
        self._reloaded = 0
        self._set_aside = 0  # spilled by close() to a file of their own, for the next writer
        self._append_errors = 0
        self._lost = 0  # records close() could neither store nor spill
        self._last_error: str | None = None
        self._spill = SpillFile(
            Path(spill_dir) if spill_dir else self.path / "spill", self.writer_id
        )
        self._prepare_store()
        with contextlib.suppress(OSError):
            self._spill._open()
            adopted = self._spill.adopt_orphans()
            self._spill_suspect = adopted > 0
            if adopted:
                logger.warning("adopted %d spilled rows of writers that died", adopted)
        # DuckDB (for the converter) imported here, not on a thread: a process forked while
        # another thread held the import lock would hang on its own first conversion
        import duckdb  # noqa: F401

        self._thread = threading.Thread(
            target=self._run, name=f"mcp-guard-audit-{self.writer_id[-6:]}", daemon=True
        )
        self._thread.start()
        _process.register(self)

    # ------------------------------------------------------------------ request path

    def append(self, event: DecisionEvent) -> bool:
        """Queue the record of one decision. No I/O; never raises. Returns False when the
        record could not be queued (counted in `append_errors`): the middleware then
        denies, as a decision it cannot record is not enforced as an allow."""
        try:
            request = event.request
            args, redacted = self._redactor.redact(request.args)
            context: Any = request.context
            # (resource fields, context paths) redacted, for `inputs_redacted`; usually None
            fields = event.inputs_redacted  # the middleware redacted the URI it shows
            in_context: Any = ()
            if context:
                context, in_context = self._redactor.redact(context)
                if in_context:
                    in_context = tuple(f"context.{path}" for path in in_context)
            resource = request.resource
            if resource.uri is not None:  # a URI can carry what redaction took from args
                shown = self._redactor.resource(resource, request.args, args, redacted)
                if shown is not resource:  # (not shown redacted by the middleware already)
                    fields = Redactor.fields(resource, shown)
                    resource = shown
            inputs = (fields, in_context) if fields or in_context else None
            item = (
                DECISION, event.decision_id, time.time_ns() // 1000, request.principal,
                resource, request.action, request.time, context, args, redacted,
                event.decision, event.shadow, event.server, event.transport,
                event.session_id, event.request_id, event.method, event.trace_id,
                event.span_id, inputs,
            )  # fmt: skip
            if self.durable and event.method == "tools/call":
                with self._durable_lock:
                    self._pending.add(event.decision_id)
                self._put(item)
                self._wake.set()  # group commit: the writer starts now, others join in
            else:
                self._put(item)
        except Exception:
            self._append_errors += 1
            logger.exception("decision record could not be queued")
            return False
        return True

    def append_listing(self, listing_id: str, events: Sequence[DecisionEvent]) -> bool:
        """Queue the records of one listing: `events` are the per-component decisions of
        one list request (same principal, clock, request and span; no arguments), stored
        as one `listings` row and read back as one `decisions` record each. No I/O; never
        raises. Returns False when they could not be queued (counted): the middleware
        then shows nothing."""
        if not events:
            return True
        try:
            entries = [(e.decision_id, e.request.resource, e.decision, e.shadow) for e in events]
        except Exception:
            self._append_errors += 1
            logger.exception("listing records could not be queued")
            return False
        return self._put_listing(listing_id, events[0], entries)

    def listing_answers(self, events: Sequence[DecisionEvent]) -> Answers | None:
        """The answers of a listing (`events`, numbered from its id), to record again with
        `append_listing_again` for listings that repeat them. None when a subclass records
        listings its own way (`append_listing`): each is then handed to it."""
        if type(self).append_listing is not AuditLog.append_listing:
            return None
        return Answers([(None, e.request.resource, e.decision, None) for e in events])

    def append_listing_again(
        self, listing_id: str, answers: Answers, eval_us: float, event: DecisionEvent
    ) -> bool:
        """Queue the records of a listing whose components got `answers` again, each found
        in `eval_us`: as `append_listing` would for its events, which share everything
        but their resource and decision with `event`. No I/O; never raises."""
        return self._put_listing(listing_id, event, Repeat(answers, eval_us))

    def _put_listing(self, listing_id: str, first: DecisionEvent, entries: Any) -> bool:
        try:
            request = first.request
            context: Any = request.context
            in_context: tuple[str, ...] = ()
            if context:
                context, paths = self._redactor.redact(context)
                in_context = tuple(f"context.{path}" for path in paths)
            self._put(
                (
                    LISTING, listing_id, time.time_ns() // 1000, request.principal,
                    request.action, request.time, context, in_context, first.server,
                    first.transport, first.session_id, first.request_id, first.method,
                    first.trace_id, first.span_id, entries,
                ),
                len(entries),
            )  # fmt: skip
        except Exception:
            self._append_errors += 1
            logger.exception("listing records could not be queued")
            return False
        return True

    def append_outcome(
        self, decision_id: str, status: str, duration_us: float, error_class: str | None
    ) -> None:
        """Queue the outcome of an allowed call (`ok` / `error`, duration, error class)."""
        try:
            self._put(
                (OUTCOME, decision_id, time.time_ns() // 1000, status, duration_us, error_class)
            )
        except Exception:
            self._append_errors += 1
            logger.exception("outcome record could not be queued")

    def _put(self, item: tuple[Any, ...], records: int = 1) -> None:
        queue = self._queue
        depth = len(queue) + self._extra
        if depth + records <= self._max_queue and not self._closed:
            if records > 1:  # listings only: calls never take the lock
                with self._extra_lock:
                    self._extra += records - 1
            queue.append(item)
            if depth < self._batch <= depth + records:
                self._wake.set()
            return
        # Full (or closed): keep memory bounded by writing this row to local disk now.
        self._wake.set()
        self._spill_items([item], fsync=self.durable)

    async def wait_durable(self, decision_id: str, timeout: float | None = None) -> bool:
        """In durable mode, return once the decision's record is on disk (store or spill,
        fsync'd). Returns at once otherwise, or when the record is already durable.

        ```python
        audit.append(event)
        await audit.wait_durable(event.decision_id)  # before running the tool
        ```
        """
        if not self.durable:
            return True
        loop = asyncio.get_running_loop()
        with self._durable_lock:
            if decision_id not in self._pending:
                return True
            waiter = self._waiters.get(decision_id)
            if waiter is None:
                waiter = (loop, loop.create_future())
                self._waiters[decision_id] = waiter
        try:
            await asyncio.wait_for(asyncio.shield(waiter[1]), timeout)
        except TimeoutError:
            return False
        return True

    # ------------------------------------------------------------------ control

    def record_policies(self, policy_set: Any) -> None:
        """Store the texts of a policy set once per content hash (table `policies`), so any
        record can be replayed against the exact set that decided it."""
        digest = str(policy_set.hash)
        if digest in self._policies_seen:
            return
        now = datetime.now(UTC).isoformat()
        lines = []
        for position, spec in enumerate(policy_set.policies):
            text = str(getattr(spec, "text", "") or "")
            doc = {
                "policy_hash": digest,
                "position": position,
                "name": spec.name,
                "source": getattr(spec, "source", None),
                "version": getattr(spec, "version", None),
                "text": text,
                "text_sha256": hashlib.sha256(text.encode()).hexdigest(),
                "recorded_at": now,
            }
            lines.append(json.dumps(doc, ensure_ascii=False).encode() + b"\n")
        self._policies_seen.add(digest)
        with self._flush_lock:
            self._policies_pending.append((digest, b"".join(lines)))
        self._wake.set()

    def flush(self, timeout: float | None = None) -> bool:
        """Write everything queued so far; return whether it finished within `timeout`."""
        if not self._thread.is_alive():
            return not self._queue
        done = threading.Event()
        with self._flush_lock:
            self._flush_waiters.append(done)
        self._wake.set()
        return done.wait(timeout)

    def close(self, timeout: float = 30.0) -> None:
        """Flush everything and stop the writer. Idempotent; also runs at exit and SIGTERM.

        Returns within about `timeout` (and a second): what the writer thread has not
        written by then is spilled, for it or the next writer to load back."""
        if self._closed:
            return
        self._stopping = True
        self._wake.set()
        self._thread.join(timeout)
        self._closed = True
        with self._handover:
            self._abandoned = stuck = not self._finished
            if stuck or self._queue or self._unsaved:
                # the writer is stuck: keep the rest on local disk rather than lose it
                self._spill_leftovers(stuck)
        if not stuck:
            self._spill.close()
            self._writer.close()
        # else the writer thread does both once its write is done (DuckDB may be stuck
        # mid-write), and keeps the spill file locked until then (see `_spill_leftovers`)
        _process.forget(self)

    def _spill_leftovers(self, stuck: bool) -> None:
        """Spill what is queued and, when the writer thread is `stuck` in a write, the
        rows it holds: the slice it took from the queue and has not handed over, and the
        batches handed over whose write has not ended.

        The stuck write may still complete, storing rows that are in the spill file now.
        So the spill file is marked suspect (its rows are checked against the store before
        they are loaded back) and stays locked until the writer thread is done: no other
        writer adopts it while that write can still land; then the writer thread loads it
        back itself (see `_run`), or, if the process ends first, the next writer adopts it,
        and adopted rows are checked too.

        A writer thread stuck loading spilled rows back holds the spill file: the rows it
        is loading stay in it, and these go to a spill file of their own, let go of at
        once for the next writer to adopt."""
        items = []
        while self._queue:
            items.append(self._queue.popleft())
        self._dequeued(items)
        rows: list[tuple[str, str]] = []
        ids: list[str] = []
        if stuck:
            batches = self._writer.unsettled()
            self._given_up = {id(b) for b in batches}  # `_batch_failed` need not spill them
            for batch in batches:
                rows += [(batch.table, body) for body in batch.bodies]
                ids += batch.ids
            items[:0] = self._taken.not_handed(rows)
        # rows the store and the spill file refused so far, retried at each flush: the
        # spill file gets one more try (if the writer thread is stuck, it may still write
        # them too; the spill is suspect then, so they are stored once)
        unsaved = list(self._unsaved)
        for table, bodies, batch_ids in unsaved:
            rows += [(table, body) for body in bodies]
            ids += batch_ids
        if not stuck:
            self._unsaved = []
        if not rows and not items:
            # a write it was making may still land next to what is spilled
            if stuck and self._spill.lock.acquire(timeout=_CLOSE_SPILL_WAIT):
                self._spill_suspect = True
                self._spill.lock.release()
            return
        # The writer thread holds the spill file's lock while it loads spilled rows back,
        # for as long as the store's write takes, which may be forever (a hung disk): do
        # not wait for it. Those rows stay in that file; these go to one of their own.
        spill, aside = self._spill, None
        if not spill.lock.acquire(timeout=_CLOSE_SPILL_WAIT):
            spill = aside = SpillFile(self._spill.directory, uuid7().replace("-", ""))
        try:
            all_rows = rows + self._item_rows(items)
            spill.write(all_rows, fsync=True)
            self._spilled += len(all_rows)
            if stuck and aside is None:
                self._spill_suspect = True
        except Exception as exc:  # nothing else would keep them: counted, and said
            self._last_error = repr(exc)
            lost = len(rows) + len(items)
            self._lost += lost
            logger.error(  # (not their content: it may hold what redaction kept out)
                "%d audit records lost at close: neither the store nor the spill file "
                "took them (%r)", lost, exc,
            )  # fmt: skip
            return
        finally:
            if aside is None:
                spill.lock.release()
            else:  # let go of it: the next writer to start adopts it (checking its rows)
                with contextlib.suppress(OSError):
                    aside.close()
        if aside is not None:
            self._set_aside += aside.pending
            logger.warning(
                "audit writer busy loading spilled rows back at close: %d records spilled "
                "to %s for the next writer to adopt", aside.pending, aside.path.name,
            )  # fmt: skip
        if self.durable:
            ids += [i[1] for i in items if i[0] == DECISION]
        if ids and self.durable:
            self._resolve_durable(ids)

    def stats(self) -> dict[str, Any]:
        """Counters for metrics: queue depth (records), rows written / spilled / failed / reloaded,
        spilled lines that could not be loaded back (`spill_rejected`, set aside in a
        `.rejected` file), records that close() could neither store nor spill (`lost`;
        `unsaved`: refused by both so far, retried at each flush), flush latency (sum,
        count, last), writes, and segments converted."""
        w = self._writer
        return {
            "queue_depth": len(self._queue) + self._extra,
            "written": sum(w.written.values()),
            "written_decisions": w.written["decisions"],
            "written_outcomes": w.written["outcomes"],
            "spilled": self._spilled,
            "spill_pending": self._spill.pending + self._set_aside,
            "unsaved": sum(len(rows) for _, rows, _ in self._unsaved),
            "failed": w.failed,
            "append_errors": self._append_errors,
            "lost": self._lost,
            "reloaded_from_spill": self._reloaded,
            "spill_rejected": self._spill.rejected,
            "flush_seconds_sum": w.flush_sum,
            "flush_seconds_count": w.flush_count,
            "flush_seconds_last": w.flush_last,
            "writes": w.flush_count,  # one timed write per batch
            "segments": w.segments,
            "convert_failures": w.convert_failures,
        }

    @property
    def redactor(self) -> Redactor:
        """What takes secrets out of the records (the middleware shows resources through
        it in spans too)."""
        return self._redactor

    @property
    def last_error(self) -> str | None:
        """The last write, spill or store error, as `repr` (None if there was none)."""
        return self._last_error or self._writer.last_error

    def _new_writer(self) -> SegmentWriter:
        return SegmentWriter(
            self.path, self.writer_id, durable=self.durable, on_written=self._batch_written,
            on_failed=self._batch_failed, write_hook=self._write_hook,
            hot_rows=self._segment_rows, hot_age=self._segment_age,
        )  # fmt: skip

    def _after_fork(self) -> None:
        """In a forked child (pre-fork servers), become a new writer: the parent's thread
        did not survive the fork, and two processes must never share a chain or a file."""
        self.writer_id = uuid7().replace("-", "")
        self._queue = deque()
        self._extra = 0
        self._extra_lock = threading.Lock()
        self._wake = threading.Event()
        self._flush_lock = threading.Lock()
        # reentrant: a SIGTERM handler's close() can run while this thread holds it
        self._durable_lock = threading.RLock()
        self._flush_waiters, self._pending, self._waiters, self._unsaved = [], set(), {}, []
        self._taken = _Slice([])
        self._handover = threading.Lock()
        self._finished = self._abandoned = False
        if self._writer.con is not None:
            # DuckDB's threads did not survive the fork; finalizing the parent's connection
            # here would crash, so it is deliberately never released in the child.
            _process.pin(self._writer.con)
        self._writer.forget()
        self._spill.forget()
        self._writer = self._new_writer()
        self._spill = SpillFile(self._spill.directory, self.writer_id)
        self._thread = threading.Thread(
            target=self._run, name=f"mcp-guard-audit-{self.writer_id[-6:]}", daemon=True
        )
        self._thread.start()

    # ------------------------------------------------------------------ writer thread

    def _prepare_store(self) -> None:
        try:
            for sub in (*TABLES, "policies", "itemsets", "writers", "anchors"):
                (self.path / sub).mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            self._last_error = repr(exc)
            logger.warning("audit store %s is not writable yet: %s", self.path, exc)

    def _run(self) -> None:
        while True:
            if not self._stopping:
                self._wake.wait(self._interval)
            self._wake.clear()
            stopping = self._stopping
            with self._flush_lock:
                waiters, self._flush_waiters = self._flush_waiters, []
            try:
                self._drain()
            except Exception:  # the writer must outlive any single bad batch
                logger.exception("audit writer failed a flush")
            for done in waiters:
                done.set()
            if stopping and not self._queue:
                self._last_reload = 0.0  # one last try to load spilled rows back
                with contextlib.suppress(Exception):
                    self._drain()
                break
        with self._handover:
            self._finished = True
            abandoned = self._abandoned
        if abandoned:
            # close() gave up waiting and spilled what this thread held, some of which
            # its stuck write may have stored since: load the rest back (checked against
            # the store), then let go of the spill file and the hot files, as close() would
            self._last_reload = 0.0
            with contextlib.suppress(Exception):
                self._drain()
            self._spill.close()
            self._writer.close()

    def _drain(self) -> None:
        if self._policies_pending:
            self._write_policies()
        queue = self._queue
        # Only what is queued now: rows arriving meanwhile wait for the next flush, so a
        # busy server writes once per interval (or per batch_size rows), not once per
        # write's duration.
        left = len(queue)
        while left:
            n = min(left, WRITE_MAX_ROWS)
            left -= n
            # published before it is filled: close() spills it if this thread gets stuck
            items: list[tuple[Any, ...]] = []
            self._taken = taken = _Slice(items)
            take, pop = items.append, queue.popleft
            with contextlib.suppress(IndexError):  # close() gave up on us and took the rest
                for _ in range(n):
                    take(pop())
            self._dequeued(items)
            self._write_items(taken)
        self._taken = _Slice([])
        if self._unsaved:
            unsaved, self._unsaved = self._unsaved, []
            for table, bodies, ids in unsaved:
                if table == "listings":
                    self._claim_named(bodies)
                self._writer.submit(table, bodies, ids)
        # the last write's outcome first: a failed one is spilled before the spill is read
        self._writer.settle()
        if self._spill.pending and (
            self._writer.store_ok or time.monotonic() - self._last_reload > _RELOAD_RETRY_SECONDS
        ):
            self._last_reload = time.monotonic()
            self._reload_spill()
        self._spill.sync()
        self._writer.tick()

    def _dequeued(self, items: list[tuple[Any, ...]]) -> None:
        """`items` left the queue: their listings' components no longer count."""
        if self._extra:
            extra = sum(len(i[-1]) - 1 for i in items if i[0] == LISTING)  # [-1]: entries
            with self._extra_lock:
                self._extra -= extra

    def _write_items(self, taken: _Slice) -> None:
        # A batch allocates a string or two per row; the cyclic GC would rescan the whole
        # queue many times over for garbage that cannot exist here, so pause it.
        paused = gc.isenabled()
        gc.disable()
        try:
            cache: dict[Any, Any] = {}
            body, listing_row = self._rows.body, self._listing_row
            decisions, outcomes, listings, ids = [], [], [], []
            listing_chars = 0
            durable = self.durable
            items = taken.items
            for n, item in enumerate(items):
                if not n & 255:
                    self._writer.yield_gil()
                try:
                    kind = item[0]
                    if kind == DECISION:
                        decisions.append(body(item, cache))
                        if durable:  # only durable mode waits on decision ids
                            ids.append(item[1])
                    elif kind == OUTCOME:
                        outcomes.append(outcome_body(item))
                    else:
                        listings.append(encoded := listing_row(item, cache))
                        listing_chars += len(encoded)
                        if listing_chars > WRITE_MAX_CHARS:  # a listing can be 30 KB
                            self._writer.submit("listings", listings, [])
                            taken.listings = n + 1
                            listings, listing_chars = [], 0
                except Exception:  # a record that cannot be encoded is counted, not hidden
                    self._append_errors += 1
                    logger.exception("decision record could not be encoded")
            del cache
            # (marked once handed over: the writer's `unsettled` has them from then on)
            if decisions:
                self._writer.submit("decisions", decisions, ids)
            taken.handed.add(DECISION)
            if outcomes:
                self._writer.submit("outcomes", outcomes, [])
            taken.handed.add(OUTCOME)
            if listings:
                self._writer.submit("listings", listings, [])
            taken.listings = len(items)
        finally:
            if paused:
                gc.enable()

    def _listing_row(self, item: tuple[Any, ...], cache: dict[Any, Any]) -> str:
        """A listing's row body, naming its item set when this writer claimed it within
        `CLAIM_SECONDS` (claiming or filing it first otherwise); with its items inline when
        the set cannot be claimed nor filed."""
        head, items, evals, digest = self._rows.listing_parts(item, cache)
        claimed = self._itemsets.get(digest)
        if (
            claimed is not None and time.monotonic() - claimed < CLAIM_SECONDS
        ) or self._file_itemset(digest, items):
            return f"{head},{set_reference(digest, evals)}"
        return f"{head},{inline_items(items, evals)}"

    def _file_itemset(self, digest: str, items: list[tuple[str, str]]) -> bool:
        """Claim item set `digest` in `itemsets/` (retention then keeps it, see
        `itemsets.py`), or write it there if it is not (once for all writers: the name is
        the content's hash), durably: the rows naming it may outlive a crash. False if it
        could be neither (or retention is deciding on it right now)."""
        directory = self.path / "itemsets"
        target = directory / f"{digest}.jsonl"
        now = time.monotonic()
        try:
            state = claim(target, wait=False)
            if state is None:
                return False
            # (one there now was filed since it was found missing: claimed by its writer)
            if not state and not target.exists():
                directory.mkdir(exist_ok=True)
                write_atomic(target, itemset_line(set_items(items))[1], fsync=True)
                fsync_dir(directory)
        except OSError as exc:
            self._last_error = repr(exc)
            return False
        self._claimed(digest, now)
        return True

    def _claimed(self, digest: str, when: float) -> None:
        if len(self._itemsets) >= _MAX_ITEMSETS:
            self._itemsets.clear()  # bounded; a set met again is claimed again
        self._itemsets[digest] = when

    def _claim_named(self, bodies: list[str]) -> None:
        """Claim the item sets that `bodies` (listing rows encoded earlier: spilled, or
        kept in memory) name, before they are written. A set deleted meanwhile cannot be
        filed again (its items are not at hand): the rows are stored anyway, and `verify`
        names them."""
        now = time.monotonic()
        for digest in named_in("\n".join(bodies).encode(errors="replace")):
            claimed = self._itemsets.get(digest)
            if claimed is not None and now - claimed < CLAIM_SECONDS:
                continue
            state = claim(self.path / "itemsets" / f"{digest}.jsonl", wait=True)
            if state:
                self._claimed(digest, now)
            elif state is False:
                logger.error("item set %s named by spilled listings is gone", digest[:12])

    def _batch_written(self, batch: Batch) -> None:
        if batch.ids and self.durable:
            self._resolve_durable(batch.ids)

    def _batch_failed(self, batch: Batch) -> None:
        """A batch could not be written: its rows go to the spill file, else stay in
        memory for the next flush; never dropped."""
        if id(batch) in self._given_up:  # close() spilled it while its write was stuck
            if batch.ids and self.durable:
                self._resolve_durable(batch.ids)
            return
        try:
            self._spill.write([(batch.table, b) for b in batch.bodies], fsync=True)
        except OSError as exc:
            self._spill_suspect = True  # part of the batch may be in the spill file
            self._last_error = repr(exc)
            logger.error(
                "audit spill failed too (%s); %d rows kept in memory", exc, len(batch.bodies)
            )
            self._unsaved.append((batch.table, batch.bodies, batch.ids))
            return
        self._spilled += len(batch.bodies)
        if batch.ids and self.durable:
            self._resolve_durable(batch.ids)

    def _spill_items(self, items: list[tuple[Any, ...]], *, fsync: bool) -> None:
        rows = self._item_rows(items)
        self._spill.write(rows, fsync=fsync)
        self._spilled += len(rows)
        if self.durable:
            self._resolve_durable([i[1] for i in items if i[0] == DECISION])

    def _item_rows(self, items: list[tuple[Any, ...]]) -> list[tuple[str, str]]:
        """Queued records as (table, body) rows, their listings' items inline."""
        return [
            ("decisions", self._rows.body(i)) if i[0] == DECISION else
            ("outcomes", outcome_body(i)) if i[0] == OUTCOME else
            ("listings", self._rows.listing_body(i))
            for i in items
        ]  # fmt: skip

    def _reload_spill(self) -> None:
        """Load spilled rows back into the store, then rewrite the spill file without them.
        A crash (or a failed rewrite) between the two leaves rows in the spill file that
        the store already has: those are checked against the store before loading, so
        each row is stored once."""
        with self._spill.lock:
            rows, bad = self._spill.read()
            if self._spill_suspect:
                try:
                    rows = self._not_stored(rows)
                except Exception as exc:  # cannot tell: keep them spilled, try again later
                    self._last_error = repr(exc)
                    logger.warning("spilled rows not loaded back yet: %s", exc)
                    return
            try:  # set aside before the file is rewritten without them
                self._spill.reject(bad)
            except OSError as exc:  # the file keeps them, and its rows, for next time
                self._last_error = repr(exc)
                logger.error("unreadable spilled lines could not be set aside (%s)", exc)
                return
            left: list[tuple[str, str]] = []
            for table in TABLES:
                batch = [b for t, b in rows if t == table]
                if not batch:
                    continue
                if table == "listings":
                    self._claim_named(batch)
                written = self._writer.write_now(table, batch)
                self._reloaded += written
                left.extend((table, b) for b in batch[written:])
            try:
                self._spill.replace(left)
            except OSError as exc:  # the loaded rows are still in the file: check next time
                self._spill_suspect = True
                self._last_error = repr(exc)
                logger.error("spill file could not be rewritten (%s)", exc)
                return
            self._spill_suspect = False

    def _not_stored(self, rows: list[tuple[str, str]]) -> list[tuple[str, str]]:
        """`rows` without those the store already has, and each only once (by table and
        decision id, unique in every table: a listing's row carries its listing id)."""
        from guard.audit.store import TABLE_VIEWS, open_store

        ids = [(table, json.loads(body + "}")["decision_id"]) for table, body in rows]
        stored: set[tuple[str, str]] = set()
        with open_store(self.path) as store:
            for table in TABLES:
                wanted = [i for t, i in ids if t == table]
                if wanted:
                    found = store.execute(
                        f"SELECT DISTINCT decision_id FROM {TABLE_VIEWS[table]} "  # noqa: S608
                        "WHERE decision_id IN (SELECT unnest(?::VARCHAR[]))",
                        [wanted],
                    ).fetchall()
                    stored.update((table, i) for (i,) in found)
        out = []
        for key, row in zip(ids, rows, strict=True):
            if key not in stored:
                stored.add(key)  # a row adopted twice is loaded once
                out.append(row)
        if len(out) < len(rows):
            logger.warning("%d spilled rows were stored already", len(rows) - len(out))
        return out

    def _write_policies(self) -> None:
        with self._flush_lock:
            pending, self._policies_pending = self._policies_pending, []
        for i, (digest, data) in enumerate(pending):
            target = self.path / "policies" / f"{digest}.jsonl"
            try:
                if not target.exists():
                    target.parent.mkdir(parents=True, exist_ok=True)
                    write_atomic(target, data)
            except OSError as exc:
                self._last_error = repr(exc)
                with self._flush_lock:
                    self._policies_pending[:0] = pending[i:]
                return

    def _resolve_durable(self, ids: list[str]) -> None:
        if not ids:
            return
        with self._durable_lock:
            if not self._pending:
                return
            for did in ids:
                self._pending.discard(did)
                waiter = self._waiters.pop(did, None)
                if waiter is not None:
                    loop, fut = waiter
                    with contextlib.suppress(RuntimeError):  # its loop is closed
                        loop.call_soon_threadsafe(_settle, fut)


@dataclass(slots=True, eq=False)
class _Slice:
    """Records the writer thread took from the queue, and which of them it handed to its
    `SegmentWriter` (whose `unsettled` batches hold them from then on)."""

    items: list[tuple[Any, ...]]
    handed: set[int] = field(default_factory=set)  # kinds handed over, all of them
    listings: int = 0  # the listings among `items[:listings]` were handed over

    def not_handed(self, held: list[tuple[str, str]]) -> list[tuple[Any, ...]]:
        """The records not handed over yet, nor among the rows `held` (table, body) by
        unsettled batches (read from another thread: it may just have handed some)."""
        handed, listings = set(self.handed), self.listings
        items = list(self.items)
        tables = {DECISION: "decisions", OUTCOME: "outcomes", LISTING: "listings"}
        seen = {(t, _row_id(b)) for t, b in held}
        return [
            i for n, i in enumerate(items)
            if i[0] not in handed and not (i[0] == LISTING and n < listings)
            and (tables[i[0]], i[1]) not in seen
        ]  # fmt: skip


def _row_id(body: str) -> Any:
    """The `decision_id` of a row body (the listing id of a listing's row)."""
    with contextlib.suppress(ValueError, TypeError, AttributeError):
        return json.loads(body + "}").get("decision_id")
    return None


def _settle(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)
