"""An `append` that finds the queue full and the spill file's lock held spills to a file
beside it, which the writer thread let go of (for adoption) only after a load-back of the
spill file. When no load-back followed (the one holding the lock ended just as the append
gave up waiting for it, leaving nothing spilled), the file stayed locked, its rows out of
the store and unsynced, until `close()`; when it was opened after `close()`, for good
(found in review). Each flush lets go of it now, and a closed log at once."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from audit_kit import adopted_decisions, append_decisions, stored_decisions

from guard.audit import AuditLog, _writing, verify


def _spill_beside(log: AuditLog, first: int, n: int) -> set[str]:
    """Append `n` decisions while another thread holds the spill file's lock (a load-back
    that is just ending, a late spill's fsync): they are spilled beside it."""
    held, done = threading.Event(), threading.Event()

    def hold() -> None:
        with log._spill.lock:
            held.set()
            done.wait(10)

    holder = threading.Thread(target=hold, daemon=True)
    holder.start()
    assert held.wait(10)
    try:
        return append_decisions(log, first, n)
    finally:
        done.set()
        holder.join(10)


def test_the_running_writer_lets_go_of_a_file_beside_and_adopts_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_writing, "ADOPT_SECONDS", 0.0)  # look for files to adopt each flush
    store = tmp_path / "s"
    log = AuditLog(store, flush_interval=3600, max_queue=1)
    try:
        ids = _spill_beside(log, 0, 4)  # queued, or spilled beside
        assert log.stats()["spilled"] >= 2
        for _ in range(4):  # let go of, adopted, loaded back
            assert log.flush(10)
        assert stored_decisions(store) == sorted(ids)
    finally:
        log.close()
    assert stored_decisions(store) == sorted(ids)  # each once
    assert verify(store).ok


def test_a_closed_log_lets_go_of_a_file_beside_at_once(tmp_path: Path) -> None:
    store = tmp_path / "s"
    log = AuditLog(store, flush_interval=3600)
    ids = append_decisions(log, 0, 2)
    log.close()
    late = _spill_beside(log, 2, 3)  # records that reach the log after close()
    assert log.stats()["spilled"] == 3
    # a new writer adopts them at once: nothing holds their file any more
    assert adopted_decisions(store) == sorted(ids | late)
