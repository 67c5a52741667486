"""An `append` that finds the queue full spills its record on the request thread. The
writer thread holds the spill file's lock while it loads spilled rows back, for as long
as the store's write takes (forever on a hung disk): the append waited for that lock, so
a guarded server's event loop froze with it (found in review). It must spill beside the
busy file instead, at once, and lose nothing: the running writer adopts that file."""

from __future__ import annotations

import errno
import threading
import time
from pathlib import Path

from audit_kit import append_decisions

from guard.audit import AuditLog, open_store, verify


def test_an_overflowing_append_does_not_wait_for_a_hung_load_back(tmp_path: Path) -> None:
    state = {"mode": "fail"}
    entered, release = threading.Event(), threading.Event()

    def hook(table: str, rows: int) -> None:
        if state["mode"] == "fail":  # the store's disk is full: rows are spilled
            raise OSError(errno.ENOSPC, "No space left on device")
        if state["mode"] == "hang":  # then it hangs, while the spilled rows load back
            entered.set()
            release.wait(30)

    store = tmp_path / "s"
    log = AuditLog(store, write_hook=hook, flush_interval=3600, max_queue=5)
    ids = append_decisions(log, 0, 5)
    assert log.flush(10)
    assert log.stats()["spill_pending"] == 5
    state["mode"] = "hang"
    time.sleep(1.1)  # past the retry interval of a store that failed
    log._wake.set()
    assert entered.wait(10)  # the writer thread loads the spill back, and hangs
    later: set[str] = set()
    appending = threading.Thread(
        target=lambda: later.update(append_decisions(log, 5, 15)), daemon=True
    )
    started = time.monotonic()
    appending.start()
    appending.join(10)
    try:
        assert not appending.is_alive(), "append waited for the hung load-back"
        assert time.monotonic() - started < 5
        stats = log.stats()
        assert stats["spilled"] == 5 + 10  # the queue held 5 of the 15
        assert stats["spill_pending"] == 5 + 10
    finally:
        state["mode"] = "ok"
        release.set()  # the disk comes back: the load-back goes on
        appending.join(10)
    log.close()
    heir = AuditLog(store)  # adopts whatever is left spilled
    heir.close()
    with open_store(store) as con:
        stored = [i for (i,) in con.execute("SELECT decision_id FROM decisions").fetchall()]
    assert sorted(stored) == sorted(ids | later)  # each once
    assert verify(store).ok
