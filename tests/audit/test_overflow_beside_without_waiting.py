"""While the writer thread holds the spill file, loading spilled rows back into a store
whose write hangs, an `append` that finds the queue full spills beside it after waiting
50 ms for its lock. Every such append waited those 50 ms again, on the event loop: a
server whose queue is full (it is busy) answered at most 20 requests a second for as
long as the disk hung (found in review). Once a file beside is open, the next appends
go to it at once."""

from __future__ import annotations

import time
from pathlib import Path

from audit_kit import adopted_decisions, append_decisions, hung_load_back


def test_overflowing_appends_do_not_each_wait_for_a_hung_load_back(tmp_path: Path) -> None:
    store = tmp_path / "s"
    log, disk, ids = hung_load_back(store, 5, max_queue=5, hang_for=60)
    try:
        started = time.monotonic()
        later = append_decisions(log, 5, 205)  # 5 queued, 200 spilled beside
        took = time.monotonic() - started
        assert log.stats()["spilled"] == 5 + 200
        assert took < 2.0, f"200 overflowing appends took {took:.1f} s"
    finally:
        disk.mode = "ok"
        disk.release.set()
    log.close()
    assert adopted_decisions(store) == sorted(ids | later)  # each once
