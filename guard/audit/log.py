"""`AuditLog`: decision records leave the request path through a bounded queue and one
background writer thread that writes them, in batches, to the store (a hot file per table,
converted to immutable Parquet segments as it fills).

On the request path `append` redacts the arguments, takes a timestamp and queues a tuple:
no I/O, no JSON, no hashing. The writer thread (`_writing.py`) turns a batch into rows
(`rows.py`) and hands them to its `SegmentWriter` (`writer.py`), which chains them and
appends them to the table's hot file with one write. When the queue is full or the store
refuses a write, rows go to a local spill file and are loaded back once the store accepts
writes again (`_spilling.py`); every spill and failure is counted in `stats()`.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import os
import stat
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from guard._ids import uuid7
from guard._settings import MAX_WAIT, MIN_WAIT, flag, names, seconds, whole
from guard.audit import _process
from guard.audit._spilling import Slice
from guard.audit._writing import WriterThread
from guard.audit.redact import Redactor, traceback_text
from guard.audit.rows import (
    DECISION,
    LISTING,
    OUTCOME,
    QUEUE_CHARS,
    Answers,
    Repeat,
    RowBuilder,
)
from guard.audit.segments import file_pattern
from guard.audit.spill import SpillFile
from guard.audit.writer import HOT_MAX_AGE, HOT_MAX_ROWS, SegmentWriter
from guard.errors import AuditError

if TYPE_CHECKING:
    from collections.abc import Sequence

    from guard.events import DecisionEvent

__all__ = ["DEFAULT", "DEFAULT_PATH", "AuditLog", "resolve_audit"]

logger = logging.getLogger("guard.audit")

DEFAULT_PATH: Final = "./mcp-guard-audit.duckdb"
ENV_VAR: Final = "MCP_GUARD_AUDIT"
_MAX_CONTEXTS: Final = 256  # request contexts whose redaction `AuditLog` keeps


class _Default:
    __slots__ = ()

    def __repr__(self) -> str:
        return "guard.audit.DEFAULT"


DEFAULT: Final = _Default()
"""`audit=DEFAULT`: `$MCP_GUARD_AUDIT` if set (`off` switches records off), else
`./mcp-guard-audit.duckdb`."""


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
        env = env_store()
        if env == OFF:
            return None
        return AuditLog(env) if env else AuditLog(_default_store())
    if isinstance(audit, str | os.PathLike):
        return AuditLog(audit)
    raise TypeError(
        f"audit= takes a path, an AuditLog, None or DEFAULT, not {type(audit).__name__}"
    )


OFF: Final = "off"


def env_store() -> str | None:
    """`$MCP_GUARD_AUDIT`: None if unset, `OFF` if it switches records off (`off`, `none`,
    `0`, `false`), else the store path, a leading `~` expanded (a desktop client passes its
    configuration's env as written: no shell expands it)."""
    env = os.environ.get(ENV_VAR, "").strip()
    if not env:
        return None
    if env.lower() in {"off", "none", "0", "false"}:
        return OFF
    return os.path.expanduser(env)


def _default_store() -> Path:
    """`./mcp-guard-audit.duckdb`, created now: a working directory nobody chose for it (a
    desktop client starts a stdio server in `/` or wherever it runs) that cannot hold it
    would let every call run while its record waits in memory, to be lost at exit."""
    path = Path(DEFAULT_PATH).absolute()
    try:
        path.mkdir(exist_ok=True)
    except FileExistsError:  # a file: `AuditLog` refuses it, saying so
        pass
    except OSError as exc:
        raise AuditError(
            f"cannot create the default decision store {path} ({exc.strerror or exc}): set "
            f"{ENV_VAR} to a writable store path (or `off`), or pass audit= to the guard"
        ) from exc
    return path


class AuditLog(WriterThread):
    """Decision records for one process: queue, background writer, spill, chain.

    Args:
        path: the store directory (created if missing). Several processes may share it:
            each writes its own segments.
        redact_paths: extra sensitive argument paths (see `Redactor`).
        redactor: a configured `Redactor` (overrides `redact_paths`).
        claims: allow-list of token claim names to record (default: what the
            authenticator already allowed into `Principal.claims`); another claim the
            decision saw is recorded as a marker, listed in `inputs_redacted`.
        durable: commit each `tools/call` decision (fsync) before the tool runs; the
            middleware awaits `wait_durable(decision_id)`. Concurrent requests share fsyncs.
        batch_size: records that trigger a flush before the interval is up.
        flush_interval: seconds between flushes when traffic is light (each flush is one
            write per table: it bounds what a `kill -9` can lose).
        max_queue: queued records above which `append` spills to disk instead of
            queueing (a listing counts one per component, a decision once per 1,024
            characters its arguments hold: memory stays bounded).
        spill_dir: where spill files live (default `PATH/spill`).
        write_hook: called as `write_hook(table, rows)` before every write; raising makes
            that write fail (fault injection in tests).
        segment_rows: rows a hot file gathers before it becomes a Parquet segment ...
        segment_age: ... or seconds after its first row (and at `close`). Readers parse hot
            rows as JSON, so smaller files read faster; bigger ones cost less to write.

    Counts are positive integers, times positive finite seconds (`flush_interval` from
    1 ms, which keeps the idle writer from spinning, to `threading.TIMEOUT_MAX`),
    `durable` `True` or `False`; anything else raises `TypeError` / `ValueError`.

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
        claims: str | Iterable[str] | None = None,
        durable: bool = False,
        batch_size: int = 5000,
        flush_interval: float = 0.5,
        max_queue: int = 200_000,
        spill_dir: str | os.PathLike[str] | None = None,
        write_hook: Callable[[str, int], None] | None = None,
        segment_rows: int = HOT_MAX_ROWS,
        segment_age: float = HOT_MAX_AGE,
    ) -> None:
        # NaN bounds nothing, and the writer thread dies waiting longer than a thread can
        batch_size = whole("batch_size", batch_size)
        max_queue = whole("max_queue", max_queue)
        flush_interval = seconds(
            "flush_interval", flush_interval, positive=True, minimum=MIN_WAIT, maximum=MAX_WAIT
        )
        self._segment_rows = whole("segment_rows", segment_rows)
        self._segment_age = seconds("segment_age", segment_age, positive=True)
        self.path = Path(path).absolute()  # the process may change directory later
        _directory_or_absent("path", self.path)
        try:  # its segments must be nameable to DuckDB, or no reader reads them
            file_pattern(self.path)
        except AuditError as exc:
            raise ValueError(f"AuditLog path: {exc}") from None
        spill = Path(spill_dir).absolute() if spill_dir else self.path / "spill"  # (as path)
        _directory_or_absent("spill_dir", spill)
        self.writer_id = uuid7().replace("-", "")
        self.durable = flag("durable", durable)  # "no" would fsync every call
        self._redactor = redactor or Redactor(names("redact_paths", redact_paths))
        # what a call's arguments hold counts toward `max_queue` (`Redactor.measured`) unless
        # the redactor redacts its own way (a subclass's `redact`): its records count once
        self._measure = getattr(type(self._redactor), "redact", None) is Redactor.redact
        self._rows = RowBuilder(self._redactor, claims)
        # request contexts redacted (`_redacted_context`): id -> (context, its text then,
        # as recorded, the paths redacted)
        self._contexts: dict[int, tuple[Any, dict[str, Any], Any, tuple[str, ...]]] = {}
        self._batch = batch_size
        self._interval = flush_interval
        self._max_queue = max_queue
        self._write_hook = write_hook
        self._queue: deque[tuple[Any, ...]] = deque()
        # records queued beyond one per item: a listing's components after its first, a
        # heavy decision's count past one (`rows.HEAVY`)
        self._extra = 0
        self._extra_lock = threading.Lock()
        self._wake = threading.Event()
        # each flush() waiting: told when the next flush ends, and whether it succeeded
        self._flush_waiters: list[tuple[threading.Event, list[bool]]] = []
        self._flush_lock = threading.Lock()
        self._stopping = False
        self._closed = False
        self._writer = self._new_writer()  # chains and segments, writer thread only
        self._taken = Slice([])  # what the writer thread took from the queue
        # close() and the writer thread agree on who lets go of the spill file
        self._handover = threading.Lock()
        self._finished = False  # the writer thread is past its last write
        self._abandoned = False  # close() gave up waiting for it
        self._last_reload = 0.0
        # the spill file may hold rows the store already has (adopted from a writer that
        # died while loading them back, or left by a cut that failed): checked first
        self._spill_suspect = False
        self._unsaved: list[tuple[str, list[str], list[str]]] = []
        self._held = 0  # rows in `_unsaved` (see `_drain`): they count toward `max_queue`
        self._given_up: set[int] = set()  # ids of batches close() spilled mid-write
        self._policies_pending: list[tuple[str, bytes]] = []
        self._policies_seen: set[str] = set()
        self._policies_spilled: set[str] = set()
        self._policies_unspilled: set[str] = set()
        # the writer thread wrote its last policy texts: `record_policies` writes them now
        self._policies_direct = False
        # item sets claimed (`itemsets/`), with the monotonic time of the claim, writer
        # thread only: a listing whose items are one of them names it instead of holding
        # its items (see `schema.LISTING_COLUMNS`), for `CLAIM_SECONDS` after the claim
        self._itemsets: dict[str, float] = {}
        # durable mode: decision ids whose record is not yet on disk, and who waits for them
        self._pending: set[str] = set()
        self._undurable: dict[str, None] = {}  # ... and those that never will be
        self._waiters: dict[str, tuple[asyncio.AbstractEventLoop, asyncio.Future[bool]]] = {}
        # reentrant: a SIGTERM handler's close() can run while this thread holds it
        self._durable_lock = threading.RLock()
        # counters (read by stats(); telemetry turns them into metrics at scrape time)
        self._spilled = 0
        self._reloaded = 0
        self._set_aside = 0  # spilled by close() to a file of their own, for the next writer
        self._aside: SpillFile | None = None
        self._beside: SpillFile | None = None
        self._beside_lock = threading.Lock()
        self._append_errors = 0
        self._lost = 0  # records close() could neither store nor spill
        self._spill_failed = 0  # rows neither the store nor the spill file took, retries included
        self._lost_ids: set[tuple[str, Any]] = set()  # ... that a stuck writer may keep yet
        self._last_error: str | None = None
        self._spill = SpillFile(spill, self.writer_id)
        self._prepare_store()
        self._last_adoption = 0.0
        with contextlib.suppress(OSError):
            self._spill._open()
            self._adopt_orphans()
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
            if self._measure:  # (a copy of its own: `_held`)
                args, redacted, size = self._redactor.measured(request.args, held=True)
            else:
                (args, redacted), size = self._redactor.redact(request.args), 0
                args = _held(args)
            context: Any = request.context
            # (resource fields, context paths) redacted, for `inputs_redacted`; usually None
            fields = event.inputs_redacted  # the middleware redacted the URI it shows
            in_context: Any = ()
            if context:
                context, in_context = self._redacted_context(context)
            resource = request.resource
            if resource.uri is not None:  # a URI can carry what redaction took from args
                shown = self._redactor.resource(resource, request.args, args, redacted)
                if shown is not resource:  # (not shown redacted by the middleware already)
                    fields = Redactor.fields(resource, shown)
                    resource = shown
            inputs = (fields, in_context) if fields or in_context else None
            item: tuple[Any, ...] = (
                DECISION, event.decision_id, time.time_ns() // 1000, request.principal,
                resource, request.action, request.time, context, args, redacted,
                event.decision, event.shadow, event.server, event.transport,
                event.session_id, event.request_id, event.method, event.trace_id,
                event.span_id, inputs,
            )  # fmt: skip
            # counted by what it holds: a caller's big arguments, queued faster than the
            # writer stores them, must meet the bound before memory runs out
            records = 1
            if size >= 2 * QUEUE_CHARS:
                records = size // QUEUE_CHARS
                item += (records,)  # at `HEAVY`
            if self.durable and event.method == "tools/call":
                with self._durable_lock:
                    self._pending.add(event.decision_id)
                try:
                    self._put(item, records)
                except Exception:  # never to be durable: not left pending for good
                    self._resolve_durable([event.decision_id], durable=False)
                    raise
                self._wake.set()  # group commit: the writer starts now, others join in
            else:
                self._put(item, records)
        except Exception as exc:
            self._append_errors += 1
            logger.error("decision record could not be queued\n%s", traceback_text(exc))
            return False
        return True

    def _redacted_context(self, context: Mapping[str, Any]) -> tuple[Any, tuple[str, ...]]:
        """`context` as recorded, and the paths redacted from it (`context.<path>`).

        The requests from one place share one context object (`guard._request`), and
        walking it for secrets cost ~1.2 µs a call: its redaction is kept, and given again
        while the same object holds the same text (compared on each use: ~0.1 µs; a
        context any caller of `append` may have changed since is redacted again). Only a
        context of text keys and text or None values is kept (`True == 1` would take one
        for the other), `_MAX_CONTEXTS` of them. What is given is the log's own copy
        (`_held`), never the caller's object."""
        kept = self._contexts.get(id(context))
        if kept is not None and kept[0] is context:
            try:
                same = kept[1] == context
            except Exception:  # a value that cannot be compared: walked again
                same = False
            if same:
                return kept[2], kept[3]
        recorded, paths = self._redactor.redact(context)
        in_context = tuple(f"context.{path}" for path in paths)
        text = dict(context)
        if all(type(k) is str and (v is None or type(v) is str) for k, v in text.items()):
            if len(self._contexts) >= _MAX_CONTEXTS:
                self._contexts.clear()
            # (text as it was, or the redactor's new mapping of it: copies, both)
            shown = text if recorded is context else _held(recorded)
            self._contexts[id(context)] = (context, text, shown, in_context)
            return shown, in_context
        return _held(recorded), in_context

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
        except Exception as exc:
            self._append_errors += 1
            logger.error("listing records could not be queued\n%s", traceback_text(exc))
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
                context, in_context = self._redacted_context(context)
            self._put(
                (
                    LISTING, listing_id, time.time_ns() // 1000, request.principal,
                    request.action, request.time, context, in_context, first.server,
                    first.transport, first.session_id, first.request_id, first.method,
                    first.trace_id, first.span_id, entries,
                ),
                len(entries),
            )  # fmt: skip
        except Exception as exc:
            self._append_errors += 1
            logger.error("listing records could not be queued\n%s", traceback_text(exc))
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
        except Exception as exc:
            self._append_errors += 1
            logger.error("outcome record could not be queued\n%s", traceback_text(exc))

    def _put(self, item: tuple[Any, ...], records: int = 1) -> None:
        queue = self._queue
        depth = len(queue) + self._extra + self._held
        if depth + records <= self._max_queue and not self._closed:
            if records > 1:  # listings and heavy decisions only: most calls never take it
                with self._extra_lock:
                    self._extra += records - 1
            queue.append(item)
            if self._closed:  # close() drained the queue between the check and the append
                self._queued_after_close()
            elif depth < self._batch <= depth + records:
                self._wake.set()
            return
        # Full (or closed): keep memory bounded by writing this row to local disk now.
        self._wake.set()
        self._spill_items([item], fsync=self.durable)

    def _queued_after_close(self) -> None:
        """Spill what reached the queue after `close()` drained it (an `append` that found
        the log open, then lost the GIL to `close()`): nothing reads the queue any more.
        Under the hand-over lock `close()` spills its leftovers with, so each record is
        spilled once."""
        with self._handover:
            items = []
            while self._queue:
                items.append(self._queue.popleft())
        if items:
            self._dequeued(items)
            self._spill_items(items, fsync=self.durable)

    async def wait_durable(self, decision_id: str, timeout: float | None = None) -> bool:
        """In durable mode, return True once the decision's record is on disk (store or
        spill, fsync'd); False after `timeout`, or as soon as the record is known never to
        get there (the writer could not encode it). Returns True at once otherwise, or when
        the record is already durable.

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
                return decision_id not in self._undurable
            waiter = self._waiters.get(decision_id)
            if waiter is None:
                waiter = (loop, loop.create_future())
                self._waiters[decision_id] = waiter
        try:
            return await asyncio.wait_for(asyncio.shield(waiter[1]), timeout)
        except TimeoutError:
            return False

    # ------------------------------------------------------------------ control

    def record_policies(self, policy_set: Any) -> None:
        """Store the texts of a policy set once per content hash (table `policies`), so any
        record can be replayed against the exact set that decided it. The writer thread
        stores them; after `close()`, this call does (synced), as records that reach a
        closed log are spilled for the next writer and name this set. Texts the store
        refuses are spilled too (the spill directory's `policies/`, synced), and filed by
        the next writer to start or by a running one, as spilled rows are."""
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
        data = b"".join(lines)
        with self._flush_lock:  # (the writer thread turns `_policies_direct` on under it)
            direct = self._policies_direct
            if not direct:
                self._policies_pending.append((digest, data))
        if not direct:
            self._wake.set()
            return
        try:
            self._store_policies(digest, data, fsync=True)
        except OSError as exc:
            self._last_error = repr(exc)
            self._spill_policies([(digest, data)])  # for the next writer, as the records
            if digest not in self._policies_spilled:
                self._policies_seen.discard(digest)  # a later call tries again

    def flush(self, timeout: float | None = None) -> bool:
        """Write everything queued so far; return whether it finished within `timeout`
        (False too if the flush failed: what it held is tried again at the next one)."""
        if not self._thread.is_alive():
            return not self._queue
        done, ok = threading.Event(), [False]
        with self._flush_lock:
            self._flush_waiters.append((done, ok))
        self._wake.set()
        return done.wait(timeout) and ok[0]

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
        self._let_go_beside()  # (appends after close may spill beside again: see `_put`)
        if not stuck:
            self._spill.close()
            self._writer.close()
            _process.forget(self)
        # else the writer thread does all three once its write is done (DuckDB may be stuck
        # mid-write), and keeps the spill file locked until then (see `_spill_leftovers`):
        # a process forked meanwhile lets go of its copies of those files (`_after_fork`)

    def stats(self) -> dict[str, Any]:
        """Counters for metrics: queue depth (records), rows written / spilled / failed / reloaded,
        spilled lines that could not be loaded back (`spill_rejected`, set aside in a
        `.rejected` file), records that close() could neither store nor spill (`lost`;
        `unsaved`: refused by both so far, retried at each flush; `spill_failed`: rows the
        spill file refused after the store did, retries included), flush latency (sum,
        count, last), writes, and segments converted."""
        w, beside = self._writer, self._beside
        return {
            "queue_depth": len(self._queue) + self._extra,
            "written": sum(w.written.values()),
            "written_decisions": w.written["decisions"],
            "written_outcomes": w.written["outcomes"],
            "spilled": self._spilled,
            "spill_pending": self._spill.pending
            + self._set_aside
            + (beside.pending if beside else 0),
            "unsaved": self._held,
            "spill_failed": self._spill_failed,
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
        did not survive the fork, and two processes must never share a chain or a file.
        A log closed while its writer thread was stuck only lets go of the files that thread
        still holds: the child's copies would keep them locked after the parent's thread
        let go, and no other writer could adopt their rows while the child lives."""
        if self._writer.con is not None:
            # DuckDB's threads did not survive the fork; finalizing the parent's connection
            # here would crash, so it is deliberately never released in the child.
            _process.pin(self._writer.con)
        self._writer.forget()
        self._spill.forget()
        beside, self._beside, self._beside_lock = self._beside, None, threading.Lock()
        if beside is not None:
            beside.forget()
        if self._closed:
            aside, self._aside = self._aside, None
            if aside is not None:
                aside.forget()
            _process.forget(self)  # nothing of it is left in this process
            return
        self.writer_id = uuid7().replace("-", "")
        self._queue = deque()
        self._extra = 0
        self._extra_lock = threading.Lock()
        self._wake = threading.Event()
        self._flush_lock = threading.Lock()
        # reentrant: a SIGTERM handler's close() can run while this thread holds it
        self._durable_lock = threading.RLock()
        self._flush_waiters, self._pending, self._waiters, self._unsaved = [], set(), {}, []
        self._undurable = {}
        self._held = 0
        self._taken = Slice([])
        self._handover = threading.Lock()
        self._finished = self._abandoned = self._policies_direct = False
        filed = self._writer.policies  # the parent filed them; this writer's rows name them
        self._writer = self._new_writer()
        self._writer.policies |= filed
        self._spill = SpillFile(self._spill.directory, self.writer_id)
        self._thread = threading.Thread(
            target=self._run, name=f"mcp-guard-audit-{self.writer_id[-6:]}", daemon=True
        )
        self._thread.start()


# values a record holds as they are: none can change after `append` (redaction turned
# anything else into text)
_LEAVES: Final = frozenset({str, int, float, bool, type(None)})


def _held(value: Any) -> Any:
    """`value` as a queued record holds it until the writer encodes it: its mappings and
    lists copied (as dicts and lists), all the way down. What `append` redacted must be
    what is stored: a tool given the request's own objects (a parameter typed `Any`)
    that changes them in place, or a caller that changes a context it passed, would
    otherwise change the record after the decision, secrets it adds included."""
    if type(value) in _LEAVES:
        return value
    if isinstance(value, Mapping):
        return {k: _held(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_held(v) for v in value]
    return value


def _directory_or_absent(name: str, path: Path) -> None:
    """Refuse a store or spill path that is a file, or lies under one: no record could
    ever be written or spilled there, and `close()` would lose them all. A missing
    directory is created later; one not writable yet (permissions, a mount) is retried."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return
    except NotADirectoryError:
        raise ValueError(f"AuditLog {name} {path} lies under a file, not a directory") from None
    except OSError:
        return  # not readable yet: said when the writer tries it
    if not stat.S_ISDIR(st.st_mode):
        raise ValueError(
            f"AuditLog {name} {path} is not a directory (a store is a directory of segments)"
        )
