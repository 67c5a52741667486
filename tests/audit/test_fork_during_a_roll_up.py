"""A process forked while its parent's converter thread rolls segments up (holding the
store's maintenance lock) must not keep that lock: it would block every `compact` and
`apply_retention` and skip every writer's roll-ups for as long as the child lives."""

from __future__ import annotations

import os
import time
from pathlib import Path

from audit_kit import event

from guard.audit import AuditLog
from guard.audit.maintenance import maintenance_lock
from guard.audit.writer import ROLLUP_FANIN


def _write_locked_by(path: Path, pid: int) -> bool:
    """Whether /proc/locks shows an exclusive flock on `path` taken by process `pid`
    (read without taking any lock, so it never disturbs the writer)."""
    st = os.stat(path)
    inode = f"{os.major(st.st_dev):02x}:{os.minor(st.st_dev):02x}:{st.st_ino}"
    with open("/proc/locks") as fh:
        for line in fh:
            parts = line.split()
            if "->" in parts:
                continue  # a waiter
            if parts[1:6:2] == ["FLOCK", "WRITE", inode] and parts[4] == str(pid):
                return True
    return False


def test_a_child_forked_during_a_roll_up_does_not_keep_the_maintenance_lock(
    tmp_path: Path,
) -> None:
    store = tmp_path / "s"
    log = AuditLog(store, flush_interval=3600, segment_rows=1)  # one segment per flush
    lock = store / ".maintenance.lock"
    lock.touch()
    written = 0
    for _attempt in range(10):  # until the fork lands inside a roll-up (usually the first)
        rolled = len(list((store / "decisions").glob("*.L1.parquet")))
        for _ in range(ROLLUP_FANIN - 1):
            log.append(event(written))
            written += 1
            log.flush()
            deadline = time.monotonic() + 10
            while log.stats()["segments"] < written and time.monotonic() < deadline:
                time.sleep(0.005)
        log.append(event(written))
        written += 1
        log.flush()  # the 16th segment: its conversion rolls the 16 up, under the lock
        deadline = time.monotonic() + 10
        caught = False
        while time.monotonic() < deadline:
            if _write_locked_by(lock, os.getpid()):
                caught = True
                break
            if len(list((store / "decisions").glob("*.L1.parquet"))) > rolled:
                break  # this roll-up was over before it was seen: once more
        if caught:
            break
    assert caught, "never saw a roll-up hold the lock"
    ready, go = os.pipe(), os.pipe()
    pid = os.fork()  # e.g. a pre-fork server starting a worker right now
    if pid == 0:
        try:
            os.write(ready[1], b"x")
            os.read(go[0], 1)
        finally:
            os._exit(0)
    try:
        os.read(ready[0], 1)
        deadline = time.monotonic() + 10
        while len(list((store / "decisions").glob("*.L1.parquet"))) <= rolled:
            assert time.monotonic() < deadline, "the roll-up did not finish"
            time.sleep(0.01)
        time.sleep(0.2)  # the parent's converter has let go of the lock by now
        assert not _write_locked_by(lock, os.getpid())
        with maintenance_lock(store, wait=False) as locked:
            assert locked, "compact / retention would wait for the child to exit"
    finally:
        os.write(go[1], b"x")
        os.waitpid(pid, 0)
        log.close()
