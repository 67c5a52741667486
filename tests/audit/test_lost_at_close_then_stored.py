"""close() counts as `lost` the records it could neither store nor spill while the writer
thread is stuck in a write. Found in review: that write may land after all, and the thread
then stores the rest of what it held; those records stayed counted as lost
(`stats()["lost"]`, `mcpguard_audit_rows_failed`)."""

from __future__ import annotations

import threading
from pathlib import Path

from audit_kit import append_calls, spill_dir_gone

from guard.audit import AuditLog, open_store


def test_records_a_stuck_write_stores_after_close_are_not_counted_lost(tmp_path: Path) -> None:
    entered, release = threading.Event(), threading.Event()

    def hook(table: str, rows: int) -> None:  # the store's write hangs, then lands
        entered.set()
        release.wait(30)

    store = tmp_path / "s"
    log = AuditLog(store, write_hook=hook, spill_dir=tmp_path / "spill", flush_interval=3600)
    spill_dir_gone(log)  # nothing spills
    append_calls(log, 0, 10)  # 10 decisions and their outcomes
    log._wake.set()
    assert entered.wait(10)  # stuck writing the decisions; the outcomes not handed over yet
    append_calls(log, 10, 5)  # queued: close() takes them, and only it could keep them
    try:
        log.close(timeout=0.5)
        assert log.stats()["lost"] == 30  # (if the process exited now, they would be)
    finally:
        release.set()
        log._thread.join(10)
    assert not log._thread.is_alive()
    with open_store(store) as con:
        decisions = con.execute("SELECT count(*) FROM decisions").fetchone()
        outcomes = con.execute("SELECT count(*) FROM outcomes").fetchone()
    assert (decisions, outcomes) == ((10,), (10,))  # the stuck thread stored what it held
    assert log.stats()["lost"] == 10  # the 10 records close() took from the queue
