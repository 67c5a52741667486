"""The writer thread of an `AuditLog`: it takes what the request path queued, a slice at
a time, turns it into rows (`rows.py`, naming item sets it files once: `itemsets.py`) and
hands them to its `SegmentWriter` (`writer.py`); between flushes it loads spilled rows
back (`_spilling.py`) and stores the texts of new policy sets.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import re
import time
from typing import TYPE_CHECKING, Any, Final

from guard.audit import _process, segments
from guard.audit._spilling import Slice, Spilling
from guard.audit.itemsets import CLAIM_SECONDS, claim, claim_clock, named_in
from guard.audit.redact import traceback_text
from guard.audit.rows import (
    CHAIN_BYTES,
    DECISION,
    HEAVY,
    LISTING,
    OUTCOME,
    QUEUE_CHARS,
    inline_items,
    outcome_body,
    set_items,
    set_reference,
)
from guard.audit.schema import TABLES, itemset_line
from guard.audit.segments import fsync_dir, remove_quietly, write_atomic

if TYPE_CHECKING:
    import threading
    from pathlib import Path

    from guard.audit.writer import Batch

__all__ = ["WRITE_MAX_CHARS", "WRITE_MAX_ROWS", "WriterThread"]

logger = logging.getLogger("guard.audit")

# A backlog is encoded, chained and written a slice at a time: one slice is written while
# the next is encoded, and ~6 MB of rows stay in the CPU's caches between the three steps
# (25,000-row slices ingested ~10% fewer rows a second).
WRITE_MAX_ROWS: Final = 5_000  # rows per write when a flush has more ...
WRITE_MAX_CHARS: Final = 8 * 1024 * 1024  # ... and listings per write (a backlog of big
# listings must not be encoded all at once: 25,000 listings of 100 tools are 700 MB) ...
# ... and, for decisions with big arguments, about as many characters: a write ends once
# its heavy decisions' counts (one per `QUEUE_CHARS` characters) reach this many
_WRITE_MAX_WEIGHT: Final = WRITE_MAX_CHARS // QUEUE_CHARS
_MAX_ITEMSETS: Final = 65_536  # item sets a writer remembers having claimed
_RELOAD_RETRY_SECONDS: Final = 1.0  # how often a failing store is retried without traffic
# How often a running writer looks for the spill files of writers gone since it started (a
# killed worker's): a glob of the spill directory and a lock attempt per file found.
ADOPT_SECONDS: Final = 10.0
_HEX_DIGEST: Final = re.compile(r"[0-9a-f]{64}")  # a policy set's hash: a spilled file's name
# Durable mode: decision ids whose record will never be on disk, kept for a `wait_durable`
# still to come (the middleware asks right after `append`: it finds them well within this)
_MAX_UNDURABLE: Final = 65_536


class WriterThread(Spilling):
    """`AuditLog`'s writer thread (`_run`), on its state (set up by `AuditLog.__init__`)."""

    _stopping: bool
    _interval: float
    _wake: threading.Event
    _flush_lock: threading.Lock
    _flush_waiters: list[tuple[threading.Event, list[bool]]]
    _finished: bool
    _last_reload: float
    _last_adoption: float
    _extra: int
    _extra_lock: threading.Lock
    _append_errors: int
    _itemsets: dict[str, float]
    _policies_pending: list[tuple[str, bytes]]
    _policies_direct: bool
    _policies_spilled: set[str]  # hashes of sets whose texts this writer spilled
    _policies_unspilled: set[str]  # ... or failed to spill (reported once)
    _pending: set[str]
    _undurable: dict[str, None]  # ids never to be durable, oldest first (bounded)
    _waiters: dict[str, tuple[asyncio.AbstractEventLoop, asyncio.Future[bool]]]
    _durable_lock: threading.RLock

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
            ok = True
            try:
                self._drain()
            except Exception as exc:  # the writer must outlive any single bad batch
                ok = False
                self._last_error = repr(exc)
                logger.error("audit writer failed a flush\n%s", traceback_text(exc))
            for done, result in waiters:
                result[0] = ok
                done.set()
            if stopping and not self._queue:
                self._last_reload = 0.0  # one last try to load spilled rows back
                with contextlib.suppress(Exception):
                    self._drain()
                break
        # No flush follows: policy texts recorded from now on are stored by
        # `record_policies` itself, those recorded since the last flush here.
        with self._flush_lock:
            self._policies_direct = True
        if self._policies_pending:
            self._write_policies()
            lost = [d for d, _ in self._policies_pending if d not in self._policies_spilled]
            if self._policies_pending and not lost:
                logger.warning(
                    "texts of %d policy sets could not be stored at close: spilled, for the "
                    "next writer to file", len(self._policies_pending),
                )  # fmt: skip
            elif lost:
                logger.error(
                    "texts of %d policy sets could be neither stored nor spilled at close: "
                    "their records are not replayable", len(lost),
                )  # fmt: skip
        with self._handover:
            self._finished = True
            abandoned = self._abandoned
        if abandoned:
            # close() gave up waiting and spilled what this thread held, some of which
            # its stuck write may have stored since: load the rest back (checked against
            # the store), then let go of the spill file and the hot files, as close() would
            self._last_reload = 0.0
            try:
                with contextlib.suppress(Exception):
                    self._drain()
                self._spill.close()
                self._writer.close()
            finally:
                # nothing here can store the rows close() set aside any more: the next
                # writer may adopt them (it checks them against the store then)
                aside, self._aside = self._aside, None
                if aside is not None:
                    with contextlib.suppress(OSError):
                        aside.close()
                _process.forget(self)  # (a process forked from now on holds none of them)

    def _drain(self) -> None:
        if self._policies_pending:
            self._write_policies()
        queue = self._queue
        # Only what is queued now: rows arriving meanwhile wait for the next flush, so a
        # busy server writes once per interval (or per batch_size rows), not once per
        # write's duration.
        left = len(queue)
        while left:
            # published before it is filled: close() spills it if this thread gets stuck
            items: list[tuple[Any, ...]] = []
            self._taken = taken = Slice(items)
            take, pop = items.append, queue.popleft
            weight = 0  # heavy decisions' counts (`QUEUE_CHARS` each): what they hold
            with contextlib.suppress(IndexError):  # close() gave up on us and took the rest
                for _ in range(min(left, WRITE_MAX_ROWS)):
                    take(item := pop())
                    if len(item) > HEAVY and item[0] != LISTING:
                        weight += item[HEAVY]
                        if weight >= _WRITE_MAX_WEIGHT:  # a write of big arguments: enough
                            break
            left = left - len(items) if items else 0
            self._dequeued(items)
            try:
                self._write_items(taken)
            except Exception as exc:  # not lost with the flush: retried just below
                self._slice_failed(taken, exc)
        self._taken = Slice([])
        if self._unsaved:
            unsaved, self._unsaved = self._unsaved, []
            for n, (table, bodies, ids) in enumerate(unsaved):
                try:
                    if table == "listings":
                        self._claim_named(bodies)
                    self._writer.submit(table, bodies, ids)
                except Exception:  # those not handed over wait for the next flush
                    self._unsaved[:0] = unsaved[n:]
                    raise
        # the last write's outcome first: a failed one is spilled before the spill is read
        self._writer.settle()
        # Rows neither the store nor the spill file took wait in memory; they count toward
        # `max_queue` as queued ones do (counted here, once they are back: meanwhile the old
        # count stands), so memory stays bounded and, once the bound is reached, `append`
        # spills on the request path, fails there too, and the call is denied.
        self._held = sum(len(bodies) for _, bodies, _ in self._unsaved)
        if not self._stopping and time.monotonic() - self._last_adoption > ADOPT_SECONDS:
            self._adopt_orphans()
        try:
            if self._spill.pending and (
                self._writer.store_ok
                or time.monotonic() - self._last_reload > _RELOAD_RETRY_SECONDS
            ):
                self._last_reload = time.monotonic()
                self._reload_spill()
        finally:
            # appends spilled beside the spill file while this thread held it (loading it
            # back, or spilling a failed write), or while it was just letting go of it
            if self._beside is not None:
                self._let_go_beside()
        self._spill.sync()
        self._writer.tick()

    def _dequeued(self, items: list[tuple[Any, ...]]) -> None:
        """`items` left the queue: their listings' components, and what their heavy
        decisions count past one, no longer count."""
        if self._extra:
            extra = sum(
                len(i[-1]) - 1 if i[0] == LISTING else i[HEAVY] - 1  # [-1]: entries
                for i in items
                if i[0] == LISTING or len(i) > HEAVY
            )
            with self._extra_lock:
                self._extra -= extra

    def _write_items(self, taken: Slice) -> None:
        # A batch allocates a string or two per row; the cyclic GC would rescan the whole
        # queue many times over for garbage that cannot exist here, so pause it.
        paused = gc.isenabled()
        gc.disable()
        try:
            cache: dict[Any, Any] = {}
            body, listing_row, within = self._rows.body, self._listing_row, self._rows.within
            # a body of up to `short` characters is a row within the readers' limit (UTF-8
            # takes at most 4 bytes a character); a longer one is measured
            limit = segments.MAX_ROW_BYTES
            short = (limit - CHAIN_BYTES) // 4
            decisions, outcomes, listings, ids, unencoded = [], [], [], [], []
            listing_chars = 0
            durable = self.durable
            items = taken.items
            for n, item in enumerate(items):
                if not n & 255:
                    self._writer.yield_gil()
                try:
                    kind = item[0]
                    if kind == DECISION:
                        encoded = body(item, cache)
                        if len(encoded) > short:
                            encoded = within(encoded, item, cache, limit)
                        decisions.append(encoded)
                        if durable:  # only durable mode waits on decision ids
                            ids.append(item[1])
                    elif kind == OUTCOME:
                        outcomes.append(outcome_body(item))
                    else:
                        listings.append(encoded := listing_row(item, cache))
                        listing_chars += len(encoded)
                except Exception as exc:  # a record that cannot be encoded is counted, not hidden
                    self._append_errors += 1
                    taken.unencodable.add(n)
                    logger.error("decision record could not be encoded\n%s", traceback_text(exc))
                    if durable and item[0] == DECISION:  # its waiter is told now, not at timeout
                        unencoded.append(item[1])
                    continue
                if listing_chars > WRITE_MAX_CHARS:  # a listing can be 30 KB
                    self._writer.submit("listings", listings, [])
                    taken.listings = n + 1
                    listings, listing_chars = [], 0
            del cache
            if unencoded:
                self._resolve_durable(unencoded, durable=False)
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

    def _slice_failed(self, taken: Slice, exc: Exception) -> None:
        """`_write_items` failed part-way through `taken` on an error it does not expect
        (memory, a bug): the records it had not handed over are encoded again here and
        wait with the rows the store refused (`_unsaved`), submitted at the end of this
        flush (spilled if the store refuses them). One that cannot be encoded counts in
        `append_errors`, once: nothing taken from the queue is dropped uncounted."""
        self._last_error = repr(exc)
        logger.error(
            "audit writer failed a write; its records are retried\n%s", traceback_text(exc)
        )
        # those in the write in flight are its (written or spilled when it settles)
        held = [(b.table, body) for b in self._writer.unsettled() for body in b.bodies]
        counted = {id(taken.items[n]) for n in taken.unencodable}
        items = [i for i in taken.not_handed(held) if id(i) not in counted]
        rows = self._item_rows(items, leftovers=True)  # (takes out of `items` what fails)
        durable = self.durable
        for table in TABLES:
            bodies = [body for t, body in rows if t == table]
            if bodies:
                ids = [i[1] for i in items if i[0] == DECISION] if table == "decisions" else []
                self._unsaved.append((table, bodies, ids if durable else []))

    def _listing_row(self, item: tuple[Any, ...], cache: dict[Any, Any]) -> str:
        """A listing's row body, naming its item set when this writer claimed it within
        `CLAIM_SECONDS` (claiming or filing it first otherwise); with its items inline when
        the set cannot be claimed nor filed."""
        head, items, evals, digest = self._rows.listing_parts(item, cache)
        claimed = self._itemsets.get(digest)
        if (claimed is not None and claim_clock() - claimed < CLAIM_SECONDS) or self._file_itemset(
            digest, items
        ):
            return f"{head},{set_reference(digest, evals)}"
        return f"{head},{inline_items(items, evals)}"

    def _file_itemset(self, digest: str, items: list[tuple[str, str]]) -> bool:
        """Claim item set `digest` in `itemsets/` (maintenance then keeps it, see
        `itemsets.py`), or write it there if it is not (once for all writers: the name is
        the content's hash), durably: the rows naming it may outlive a crash. False if it
        could be neither (or a sweep is deciding on it right now)."""
        directory = self.path / "itemsets"
        target = directory / f"{digest}.jsonl"
        now = claim_clock()
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
        now = claim_clock()
        for digest in named_in("\n".join(bodies).encode(errors="replace")):
            claimed = self._itemsets.get(digest)
            if claimed is not None and now - claimed < CLAIM_SECONDS:
                continue
            state = claim(self.path / "itemsets" / f"{digest}.jsonl", wait=True)
            if state:
                self._claimed(digest, now)
            elif state is False:
                logger.error("item set %s named by spilled listings is gone", digest[:12])
            else:  # stored anyway (nothing else would keep them), but said
                logger.warning(
                    "item set %s named by spilled listings could not be claimed: a "
                    "maintenance sweep may delete it", digest[:12],
                )  # fmt: skip

    def _batch_written(self, batch: Batch) -> None:
        if self._abandoned:
            self._kept_after_all(batch.table, batch.bodies)
        if batch.ids and self.durable:
            self._resolve_durable(batch.ids, durable=batch.synced)

    def _write_policies(self) -> None:
        with self._flush_lock:
            pending, self._policies_pending = self._policies_pending, []
        for i, (digest, data) in enumerate(pending):
            try:
                self._store_policies(digest, data, fsync=self.durable)
                self._writer.policies.add(digest)
            except Exception as exc:  # (OSError, or one not foreseen: never dropped)
                self._last_error = repr(exc)
                # retried at each flush; meanwhile beside the spilled rows, which outlive
                # this process (`kill -9`, or a store still refusing at close)
                self._spill_policies(pending[i:])
                with self._flush_lock:
                    self._policies_pending[:0] = pending[i:]
                return
            if digest in self._policies_spilled:
                self._policies_spilled.discard(digest)
                remove_quietly(self._spilled_policies_path(digest))

    def _spilled_policies_path(self, digest: str) -> Path:
        return self._spill.directory / "policies" / f"{digest}.jsonl"

    def _spill_policies(self, texts: list[tuple[str, bytes]]) -> None:
        """Keep the texts of policy sets the store refused in the spill directory (synced):
        the next writer to start, or a running one within `ADOPT_SECONDS`, files them
        (`_file_spilled_policies`)."""
        for digest, data in texts:
            if digest in self._policies_spilled:
                continue
            target = self._spilled_policies_path(digest)
            try:
                target.parent.mkdir(parents=True, exist_ok=True)
                write_atomic(target, data, fsync=True)
                fsync_dir(target.parent)
                fsync_dir(target.parent.parent)  # (the `policies` directory may be new)
            except OSError as exc:
                self._last_error = repr(exc)
                if digest not in self._policies_unspilled:  # once, not at every flush
                    self._policies_unspilled.add(digest)
                    logger.error(
                        "texts of policy set %s could be neither stored nor spilled (%s)",
                        digest[:12], exc,
                    )  # fmt: skip
                continue
            self._policies_spilled.add(digest)
            logger.warning(
                "texts of policy set %s refused by the store: spilled, for the next writer "
                "to file", digest[:12],
            )  # fmt: skip

    def _file_spilled_policies(self) -> None:
        """Store the policy texts other writers spilled (see `_spill_policies`), then delete
        their spilled copies. A file's name is its set's hash, as in the store: any writer
        may file it, once or twice, with the same result."""
        try:
            spilled = sorted((self._spill.directory / "policies").glob("*.jsonl"))
        except OSError:
            return
        for path in spilled:
            digest = path.stem
            if digest in self._policies_spilled or not _HEX_DIGEST.fullmatch(digest):
                continue  # this writer's own, still retried; or no file of ours
            try:
                self._store_policies(digest, path.read_bytes(), fsync=True)
            except FileNotFoundError:
                continue  # filed by another writer meanwhile
            except OSError as exc:  # the store still refuses: left for a later try
                self._last_error = repr(exc)
                return
            self._writer.policies.add(digest)
            remove_quietly(path)

    def _store_policies(self, digest: str, data: bytes, *, fsync: bool = False) -> None:
        """Write the texts of policy set `digest` to `policies/`, unless they are there (the
        file's name is its content's hash: writers storing it at once write the same)."""
        target = self.path / "policies" / f"{digest}.jsonl"
        if not target.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            write_atomic(target, data, fsync=fsync)
            if fsync:
                fsync_dir(target.parent)

    def _resolve_durable(self, ids: list[str], *, durable: bool = True) -> None:
        """The records of decisions `ids` are on disk (`durable`), or never will be: their
        waiters are told, and so is a wait that starts later."""
        if not ids:
            return
        with self._durable_lock:
            pending = self._pending
            if not pending:
                return
            for did in ids:
                if did not in pending:
                    continue
                pending.discard(did)
                if not durable:  # a wait that comes later (again) is told too
                    undurable = self._undurable
                    if len(undurable) >= _MAX_UNDURABLE:
                        del undurable[next(iter(undurable))]
                    undurable[did] = None
                waiter = self._waiters.pop(did, None)
                if waiter is not None:
                    loop, fut = waiter
                    with contextlib.suppress(RuntimeError):  # its loop is closed
                        loop.call_soon_threadsafe(_settle, fut, durable)


def _settle(fut: asyncio.Future[bool], durable: bool) -> None:
    if not fut.done():
        fut.set_result(durable)
