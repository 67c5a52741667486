"""close() leaves a spill file locked while its writer thread is stuck in a write that may
still store that file's rows: its own spill file, or the one it sets aside when the thread
is stuck loading spilled rows back. No other writer may adopt them until that thread is
done. Found in review: a process forked after that close (a pre-fork server starting a
worker) inherited the locks, and kept the files locked for as long as it lived, after the
stuck thread was done with them: no writer adopted their rows meanwhile."""

from __future__ import annotations

import contextlib
import errno
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from audit_kit import append_decisions

from guard.audit import AuditLog, open_store


@contextlib.contextmanager
def _a_worker_forked() -> Iterator[None]:
    """A child process forked now, alive until the block ends."""
    ready, go = os.pipe(), os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.write(ready[1], b"x")
            os.read(go[0], 1)
        finally:
            os._exit(0)
    try:
        os.read(ready[0], 1)
        yield
    finally:
        os.write(go[1], b"x")
        os.waitpid(pid, 0)
        for fd in (*ready, *go):
            os.close(fd)


def _stored(store: Path) -> set[str]:
    with open_store(store) as con:
        return {i for (i,) in con.execute("SELECT decision_id FROM decisions").fetchall()}


def test_a_child_forked_after_a_stuck_close_does_not_keep_the_spill_file_locked(
    tmp_path: Path,
) -> None:
    state = {"mode": "fail"}
    entered, release = threading.Event(), threading.Event()

    def hook(table: str, rows: int) -> None:  # the store's disk is full ...
        if state["mode"] == "hang":  # ... and one write hangs on it a while
            entered.set()
            release.wait(30)
        raise OSError(errno.ENOSPC, "No space left on device")

    store = tmp_path / "s"
    log = AuditLog(store, write_hook=hook, flush_interval=3600)
    ids = append_decisions(log, 0, 10)
    assert log.flush(10)
    state["mode"] = "hang"
    ids |= append_decisions(log, 10, 1)
    log._wake.set()
    assert entered.wait(10)
    with contextlib.ExitStack() as worker:
        try:
            log.close(timeout=0.5)  # the spill file stays locked: the stuck write may land
            worker.enter_context(_a_worker_forked())  # e.g. a pre-fork server's worker
        finally:
            state["mode"] = "fail"
            release.set()  # the write ends (refused): the stuck thread lets go of the file
            log._thread.join(10)
        assert not log._thread.is_alive()
        assert log.stats()["spill_pending"] == 11  # the store still refused them
        heir = AuditLog(store)  # the disk has room again; the worker still lives
        heir.close()
    assert _stored(store) == ids


def test_a_child_forked_after_a_stuck_close_does_not_keep_the_set_aside_file_locked(
    tmp_path: Path,
) -> None:
    state = {"mode": "fail"}
    entered, release = threading.Event(), threading.Event()

    def hook(table: str, rows: int) -> None:  # the store's disk is full ...
        if state["mode"] == "hang" and rows == 20:  # ... and loading the 20 back hangs
            entered.set()
            release.wait(30)
        raise OSError(errno.ENOSPC, "No space left on device")

    store = tmp_path / "s"
    log = AuditLog(store, write_hook=hook, flush_interval=3600)
    ids = append_decisions(log, 0, 20)
    assert log.flush(10)
    state["mode"] = "hang"
    time.sleep(1.1)  # past the retry interval of a failing store
    log._wake.set()
    assert entered.wait(10)  # stuck loading the 20 spilled rows back, holding that file
    ids |= append_decisions(log, 20, 5)
    with contextlib.ExitStack() as worker:
        try:
            log.close(timeout=0.5)  # the 5 go to a file of their own, locked meanwhile
            assert log.stats()["spill_pending"] == 25
            worker.enter_context(_a_worker_forked())  # e.g. a pre-fork server's worker
        finally:
            state["mode"] = "fail"
            release.set()  # the load-back ends (refused): the thread lets go of both files
            log._thread.join(10)
        assert not log._thread.is_alive()
        heir = AuditLog(store)  # the disk has room again; the worker still lives
        heir.close()
    assert _stored(store) == ids
