"""While the writer thread holds the spill file, loading spilled rows back into a store
whose write hangs, an `append` that finds the queue full spills beside it after waiting
50 ms for its lock. Every such append waited those 50 ms again, on the event loop: a
server whose queue is full (it is busy) answered at most 20 requests a second for as
long as the disk hung (found in review). Once a file beside is open, the next appends
go to it at once."""

from __future__ import annotations

import errno
import threading
import time
from pathlib import Path

from audit_kit import append_decisions

from guard.audit import AuditLog, open_store, verify


def test_overflowing_appends_do_not_each_wait_for_a_hung_load_back(tmp_path: Path) -> None:
    state = {"mode": "fail"}
    entered, release = threading.Event(), threading.Event()

    def hook(table: str, rows: int) -> None:
        if state["mode"] == "fail":  # the store's disk is full: rows are spilled
            raise OSError(errno.ENOSPC, "No space left on device")
        if state["mode"] == "hang":  # then it hangs, while the spilled rows load back
            entered.set()
            release.wait(60)

    store = tmp_path / "s"
    log = AuditLog(store, write_hook=hook, flush_interval=3600, max_queue=5)
    ids = append_decisions(log, 0, 5)
    assert log.flush(10)
    state["mode"] = "hang"
    time.sleep(1.1)  # past the retry interval of a store that failed
    log._wake.set()
    assert entered.wait(10)  # the writer thread loads the spill back, and hangs
    try:
        started = time.monotonic()
        later = append_decisions(log, 5, 205)  # 5 queued, 200 spilled beside
        took = time.monotonic() - started
        assert log.stats()["spilled"] == 5 + 200
        assert took < 2.0, f"200 overflowing appends took {took:.1f} s"
    finally:
        state["mode"] = "ok"
        release.set()
    log.close()
    heir = AuditLog(store)  # adopts whatever is left spilled
    heir.close()
    with open_store(store) as con:
        stored = [i for (i,) in con.execute("SELECT decision_id FROM decisions").fetchall()]
    assert sorted(stored) == sorted(ids | later)  # each once
    assert verify(store).ok
