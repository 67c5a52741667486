"""An `append` that finds the queue full spills its record on the request thread. The
writer thread holds the spill file's lock while it loads spilled rows back, for as long
as the store's write takes (forever on a hung disk): the append waited for that lock, so
a guarded server's event loop froze with it (found in review). It must spill beside the
busy file instead, at once, and lose nothing: the running writer adopts that file."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from audit_kit import adopted_decisions, append_decisions, hung_load_back


def test_an_overflowing_append_does_not_wait_for_a_hung_load_back(tmp_path: Path) -> None:
    store = tmp_path / "s"
    log, disk, ids = hung_load_back(store, 5, max_queue=5)
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
        disk.mode = "ok"
        disk.release.set()  # the disk comes back: the load-back goes on
        appending.join(10)
    log.close()
    assert adopted_decisions(store) == sorted(ids | later)  # each once
