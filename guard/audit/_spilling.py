"""What an `AuditLog` does with rows the store does not take: they go to a local spill
file (`spill.py`) and are loaded back, checked against the store when they may be there
already, once it takes writes again; what `close()` cannot leave to a stuck writer thread
is spilled too. Nothing is dropped without being counted (`AuditLog.stats`).
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

from guard._ids import uuid7
from guard.audit.redact import traceback_text
from guard.audit.rows import DECISION, LISTING, OUTCOME, outcome_body
from guard.audit.schema import TABLES
from guard.audit.spill import SpillFile

if TYPE_CHECKING:
    import threading
    from collections import deque
    from pathlib import Path

    from guard.audit.rows import RowBuilder
    from guard.audit.writer import Batch, SegmentWriter

__all__ = ["Slice", "Spilling"]

logger = logging.getLogger("guard.audit")

# close() waits this long for the spill file, which a load-back holds while the store's write
# hangs; then it spills what is left to a file of its own (see `_spill_leftovers`)
_CLOSE_SPILL_WAIT: Final = 1.0
# ... and an `append` that finds the queue full this long: it runs on the event loop
_APPEND_SPILL_WAIT: Final = 0.05
# a flush loads spilled rows back for this long at most (a chunk at least), then the queue
_RELOAD_SLICE_SECONDS: Final = 1.0


class Spilling:
    """`AuditLog`'s spilling, on its state (set up by `AuditLog.__init__`)."""

    path: Path
    durable: bool
    _queue: deque[tuple[Any, ...]]
    _writer: SegmentWriter
    _spill: SpillFile
    _aside: SpillFile | None  # what close() spilled beside a stuck load-back, still held
    _beside: SpillFile | None  # what appends spilled beside a load-back, until it ends
    _beside_lock: threading.Lock
    _spill_suspect: bool
    _rows: RowBuilder
    _taken: Slice
    _given_up: set[int]
    _unsaved: list[tuple[str, list[str], list[str]]]
    _held: int  # rows in `_unsaved` at the end of the last flush
    _handover: threading.Lock  # close() and the writer thread agree on who does what
    _abandoned: bool  # close() gave up waiting for the writer thread
    _closed: bool
    _spilled: int
    _reloaded: int
    _set_aside: int
    _lost: int
    _spill_failed: int  # rows the spill file refused after the store did (retries included)
    _append_errors: int
    _lost_ids: set[tuple[str, Any]]  # (table, decision id) of those a stuck writer may keep
    _last_error: str | None
    _last_adoption: float  # monotonic time of the last look for other writers' spills

    if TYPE_CHECKING:  # the writer thread's (`_writing.WriterThread`)

        def _dequeued(self, items: list[tuple[Any, ...]]) -> None: ...

        def _claim_named(self, bodies: list[str]) -> None: ...

        def _resolve_durable(self, ids: list[str], *, durable: bool = True) -> None: ...

        def _file_spilled_policies(self) -> None: ...

    def _adopt_orphans(self) -> None:
        """Take the spilled rows of writers gone (or closed) into this writer's spill file,
        to be loaded back with its own, and file the policy texts spilled beside them. A
        writer does this when it starts and, on its thread, at its first flush
        `ADOPT_SECONDS` after the last look (every `flush_interval`, when that is longer):
        a worker killed beside it leaves rows nobody else would load back until a writer
        starts.
        They may be in the store already (their writer died loading them back): the spill
        file is checked before its next load."""
        self._last_adoption = time.monotonic()
        self._file_spilled_policies()
        try:
            adopted = self._spill.adopt_orphans()
        except OSError as exc:  # an orphan could not be read or moved: tried again later
            # (the files adopted before it are in this writer's file now, unchecked)
            self._spill_suspect = True
            self._last_error = repr(exc)
            return
        if adopted:
            self._spill_suspect = True
            logger.warning("adopted %d spilled rows of writers gone or closed", adopted)

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
        is loading stay in it, and these go to a spill file of their own. The writer
        thread may still store some of these too (those waiting in memory, retried at its
        last flush), so that file stays locked as well until the thread is done (`_run`):
        a writer adopting it checks its rows against the store only once, when it adopts
        them."""
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
            self._unsaved, self._held = [], 0
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
            all_rows = rows + self._item_rows(items, leftovers=True)
            spill.write(all_rows, fsync=True)
            self._spilled += len(all_rows)
            if stuck and aside is None:
                self._spill_suspect = True
        except Exception as exc:  # nothing else would keep them: counted, and said
            self._last_error = repr(exc)
            lost = len(rows) + len(items)
            self._lost += lost
            if stuck:  # its write may land yet, and it store what it holds (`_kept_after_all`)
                self._lost_ids = {(t, _row_id(b)) for t, b in rows}
                self._lost_ids.update((_TABLES[i[0]], i[1]) for i in items)
            logger.error(  # (not their content: it may hold what redaction kept out)
                "%d audit records lost at close: neither the store nor the spill file "
                "took them (%r)", lost, exc,
            )  # fmt: skip
            if self.durable:  # their waiters are told now, not at their timeout
                ids += [i[1] for i in items if i[0] == DECISION]
                self._resolve_durable(ids, durable=False)
            return
        finally:
            if aside is None:
                spill.lock.release()
            elif stuck:  # the writer thread lets go of it once it can store nothing more
                self._aside = aside
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
            self._spill_failed += len(batch.bodies)
            logger.error(
                "audit spill failed too (%s); %d rows kept in memory", exc, len(batch.bodies)
            )
            self._unsaved.append((batch.table, batch.bodies, batch.ids))  # (see `_held`)
            return
        self._spilled += len(batch.bodies)
        if self._abandoned:
            self._kept_after_all(batch.table, batch.bodies)
        if batch.ids and self.durable:
            self._resolve_durable(batch.ids)

    def _kept_after_all(self, table: str, bodies: list[str]) -> None:
        """The writer thread stored or spilled `bodies` after close() gave up on it: those
        close() counted as lost (it could keep them nowhere) are not lost after all."""
        with self._handover:  # (close() may be counting them right now)
            lost = self._lost_ids
            if not lost:
                return
            found = 0
            for body in bodies:
                key = (table, _row_id(body))
                if key in lost:
                    lost.discard(key)
                    found += 1
            self._lost -= found
        if found:
            logger.warning("%d audit records counted lost at close were kept after all", found)

    def _spill_items(self, items: list[tuple[Any, ...]], *, fsync: bool) -> None:
        rows = self._item_rows(items)
        spill = self._spill
        # The writer thread holds the spill file while it loads spilled rows back, for as
        # long as the store's write takes (forever on a hung disk); an `append` runs on the
        # event loop, which must not wait that long: it spills to a file of its own then,
        # and so do the appends after it, at once, until the writer thread lets go of it.
        if self._beside is None and spill.lock.acquire(timeout=_APPEND_SPILL_WAIT):
            try:
                spill.write(rows, fsync=fsync)
            finally:
                spill.lock.release()
        else:
            try:
                with self._beside_lock:
                    if self._beside is None:
                        self._beside = SpillFile(spill.directory, uuid7().replace("-", ""))
                    self._beside.write(rows, fsync=fsync)
            finally:
                if self._closed:  # no flush will let go of it now: synced and let go at once
                    self._let_go_beside()
        self._spilled += len(rows)
        if self.durable:
            self._resolve_durable([i[1] for i in items if i[0] == DECISION])

    def _item_rows(
        self, items: list[tuple[Any, ...]], *, leftovers: bool = False
    ) -> list[tuple[str, str]]:
        """Queued records as (table, body) rows, their listings' items inline. A record
        that cannot be encoded raises, unless these are `close()`'s `leftovers`, which
        must not all be lost with it: it is then counted (`append_errors`) and taken out
        of `items`, as the writer thread does, and its waiter is told."""
        if not leftovers:
            return [self._item_row(i) for i in items]
        rows, unencoded = [], []
        for item in items:
            try:
                rows.append(self._item_row(item))
            except Exception as exc:
                self._append_errors += 1
                logger.error("decision record could not be encoded\n%s", traceback_text(exc))
                unencoded.append(item)
        if unencoded:
            bad = {id(i) for i in unencoded}
            items[:] = [i for i in items if id(i) not in bad]
            if self.durable:
                self._resolve_durable([i[1] for i in unencoded if i[0] == DECISION], durable=False)
        return rows

    def _item_row(self, item: tuple[Any, ...]) -> tuple[str, str]:
        if item[0] == DECISION:
            return "decisions", self._rows.body(item)
        if item[0] == OUTCOME:
            return "outcomes", outcome_body(item)
        return "listings", self._rows.listing_body(item)

    def _reload_spill(self) -> None:
        """Load spilled rows back into the store, a chunk at a time from the end of the
        spill file (`SpillFile.read_tail`), each cut off the file once stored; for up to
        `_RELOAD_SLICE_SECONDS`, then the queue's turn (the next flush goes on). A crash
        (or a failed cut) between storing a chunk and cutting it, or a store that takes
        only part of one, leaves rows in the spill file that the store already has: the
        file is then suspect, and its rows are checked against the store before loading,
        so each row is stored once, until the file has been loaded back whole."""
        deadline = time.monotonic() + _RELOAD_SLICE_SECONDS
        while True:
            with self._spill.lock:
                rows, bad, start = self._spill.read_tail()
                lines = len(rows) + len(bad)
                if not lines:
                    return
                if self._spill_suspect:
                    try:
                        rows = self._not_stored(rows)
                    except Exception as exc:  # cannot tell: keep them spilled, try again later
                        self._last_error = repr(exc)
                        logger.warning("spilled rows not loaded back yet: %s", exc)
                        return
                try:  # set aside before they are cut off the file
                    self._spill.reject(bad)
                except OSError as exc:  # the file keeps them, and its rows, for next time
                    self._last_error = repr(exc)
                    logger.error("unreadable spilled lines could not be set aside (%s)", exc)
                    return
                stored = 0
                for table in TABLES:
                    batch = [b for t, b in rows if t == table]
                    if not batch:
                        continue
                    if table == "listings":
                        self._claim_named(batch)
                    written = self._writer.write_now(table, batch)
                    self._reloaded += written
                    stored += written
                    if written < len(batch):
                        break
                if stored < len(rows):  # the store failed: what it took is checked next time
                    self._spill_suspect = self._spill_suspect or stored > 0
                    return
                try:
                    self._spill.cut(start, lines)
                except OSError as exc:  # the loaded rows are still in the file: check next time
                    self._spill_suspect = True
                    self._last_error = repr(exc)
                    logger.error("spill file could not be cut back (%s)", exc)
                    return
                if start == 0:
                    self._spill_suspect = False
                    return
            if time.monotonic() >= deadline:
                return

    def _let_go_beside(self) -> None:
        """Let go of the file appends spilled to while a load-back held the spill file
        (synced; deleted if empty): this writer adopts its rows within `ADOPT_SECONDS`,
        or the next one does."""
        with self._beside_lock:
            beside, self._beside = self._beside, None
            if beside is not None:
                try:
                    beside.close()
                except OSError as exc:  # kept on disk, maybe unsynced: adopted all the same
                    self._last_error = repr(exc)
                    logger.error(
                        "audit spill file %s could not be synced (%s)", beside.path.name, exc
                    )

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


@dataclass(slots=True, eq=False)
class Slice:
    """Records the writer thread took from the queue, and which of them it handed to its
    `SegmentWriter` (whose `unsettled` batches hold them from then on)."""

    items: list[tuple[Any, ...]]
    handed: set[int] = field(default_factory=set)  # kinds handed over, all of them
    listings: int = 0  # the listings among `items[:listings]` were handed over
    unencodable: set[int] = field(default_factory=set)  # positions counted in append_errors

    def not_handed(self, held: list[tuple[str, str]]) -> list[tuple[Any, ...]]:
        """The records not handed over yet, nor among the rows `held` (table, body) by
        unsettled batches (read from another thread: it may just have handed some)."""
        handed, listings = set(self.handed), self.listings
        items = list(self.items)
        seen = {(t, _row_id(b)) for t, b in held}
        return [
            i for n, i in enumerate(items)
            if i[0] not in handed and not (i[0] == LISTING and n < listings)
            and (_TABLES[i[0]], i[1]) not in seen
        ]  # fmt: skip


_TABLES: Final = {DECISION: "decisions", OUTCOME: "outcomes", LISTING: "listings"}


def _row_id(body: str) -> Any:
    """The `decision_id` of a row body (the listing id of a listing's row)."""
    with contextlib.suppress(ValueError, TypeError, AttributeError):
        return json.loads(body + "}").get("decision_id")
    return None
