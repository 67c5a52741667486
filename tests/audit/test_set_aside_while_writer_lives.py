"""A spill file close() sets aside (the writer thread holds its own, stuck loading spilled
rows back) may hold rows that thread can still write: the rows the store and the spill
file refused so far (`unsaved`), retried at its last flush. Found in review: close() let
go of that file at once, so a writer starting meanwhile adopted it and stored those rows
before the stuck thread stored them too: each such record twice."""

from __future__ import annotations

import errno
import threading
import time
from pathlib import Path

from audit_kit import append_decisions

from guard.audit import AuditLog, open_store, verify


def test_rows_set_aside_at_close_are_stored_once_though_the_stuck_writer_lives_on(
    tmp_path: Path,
) -> None:
    state = {"mode": "fail"}
    entered, release = threading.Event(), threading.Event()

    def hook(table: str, rows: int) -> None:
        if state["mode"] == "fail":  # the store's disk is full
            raise OSError(errno.ENOSPC, "No space left on device")
        if state["mode"] == "hang" and rows == 20:  # the load-back of the 20 spilled rows
            entered.set()
            release.wait(30)
        elif state["mode"] == "hang":  # the 5 waiting in memory are refused once more
            raise OSError(errno.ENOSPC, "No space left on device")

    store, spill = tmp_path / "s", tmp_path / "spill"
    log = AuditLog(store, write_hook=hook, spill_dir=spill, flush_interval=3600)
    ids = append_decisions(log, 0, 20)
    assert log.flush(10)
    assert log.stats()["spill_pending"] == 20
    refusing = [True]  # then the local disk refuses the spill file too
    own_write = log._spill.write

    def spill_write(rows: list[tuple[str, str]], *, fsync: bool) -> None:
        if refusing[0]:
            raise OSError(errno.EIO, "Input/output error")
        own_write(rows, fsync=fsync)

    log._spill.write = spill_write  # type: ignore[method-assign]
    ids |= append_decisions(log, 20, 5)
    assert log.flush(10)
    assert log.stats()["unsaved"] == 5
    state["mode"] = "hang"
    time.sleep(1.1)  # past the retry interval of a failing store
    log._wake.set()
    assert entered.wait(10)  # the 5 refused again; the load-back of the 20 hangs
    refusing[0] = False
    try:
        log.close(timeout=0.5)  # the 5 go to a file of its own: the spill file is held
        assert log.stats()["spill_pending"] == 25
        heir = AuditLog(store, spill_dir=spill)  # another writer starts meanwhile
        heir.close()
    finally:
        state["mode"] = "ok"
        release.set()  # the disk comes back: the stuck thread goes on, and flushes
        log._thread.join(10)
    last = AuditLog(store, spill_dir=spill)  # whatever is left spilled
    last.close()
    with open_store(store) as con:
        total, distinct = con.execute(
            "SELECT count(*), count(DISTINCT decision_id) FROM decisions"
        ).fetchone()
        stored = {i for (i,) in con.execute("SELECT decision_id FROM decisions").fetchall()}
    assert stored == ids
    assert (total, distinct) == (25, 25)  # each once
    assert not [p for p in spill.glob("*.jsonl") if p.stat().st_size]
    assert verify(store).ok
