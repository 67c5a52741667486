"""`close()` while the writer thread is stuck loading spilled rows back: the load-back
holds the spill file's lock for as long as the store's write hangs, and close() waited
for that lock without a timeout (found in review). It must return within its timeout and
keep every record: the rows being loaded back stay in the spill file, the rows queued
meanwhile go to a spill file of their own; the next writer adopts both."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from audit_kit import adopted_decisions, append_decisions, hung_load_back, run_script

from guard.audit import AuditLog, open_store, verify


def test_close_while_a_spill_load_back_hangs_returns_and_keeps_every_record(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = tmp_path / "s"
    log, disk, ids = hung_load_back(store, 20)
    ids |= append_decisions(log, 20, 10)  # queued meanwhile
    closing = threading.Thread(target=log.close, kwargs={"timeout": 0.5}, daemon=True)
    started = time.monotonic()
    with caplog.at_level("WARNING", logger="guard.audit"):
        closing.start()
        closing.join(10)
    try:
        assert not closing.is_alive(), "close() waited for the hung load-back"
        assert time.monotonic() - started < 5
        assert log.stats()["spilled"] == 30  # 20 from the failed writes, 10 at close
        assert "spill" in caplog.text
    finally:
        disk.release.set()  # the disk comes back: the stuck load-back goes on
        closing.join(10)
        log._thread.join(10)
    assert adopted_decisions(store) == sorted(ids)  # each once


def test_close_while_a_load_back_hangs_until_the_process_ends_loses_nothing(
    tmp_path: Path,
) -> None:
    """As above, but the hung write never ends (the process exits meanwhile): what the
    heir finds in the spill directory is every record, the 20 being loaded back too."""

    script = r"""
import errno, os, sys, threading, time
from audit_kit import event
from guard.audit import AuditLog

state = {"mode": "fail"}
entered = threading.Event()
def hook(table, rows):
    if state["mode"] == "fail":
        raise OSError(errno.ENOSPC, "No space left on device")
    entered.set()
    threading.Event().wait()  # hangs for good

log = AuditLog(sys.argv[1], write_hook=hook, flush_interval=3600)
for i in range(20):
    log.append(event(i))
log.flush(10)
state["mode"] = "hang"
time.sleep(1.1)
log._wake.set()
assert entered.wait(10)
for i in range(20, 30):
    log.append(event(i))
log.close(timeout=0.5)
print("closed", flush=True)
os._exit(0)
"""
    store = tmp_path / "s"
    proc = run_script(script, str(store), timeout=60)
    assert "closed" in proc.stdout, proc.stdout
    heir = AuditLog(store)
    heir.close()
    with open_store(store) as con:
        total, distinct = con.execute(
            "SELECT count(*), count(DISTINCT decision_id) FROM decisions"
        ).fetchone()
    assert (total, distinct) == (30, 30)
    assert verify(store).ok
