"""A multiprocessing worker (fork / forkserver) that appends records and returns normally
keeps them: it ends with `os._exit`, after the threads shut down, never at `atexit`."""

from __future__ import annotations

import multiprocessing
from pathlib import Path

from audit_kit import event

from guard.audit import AuditLog, open_store


def _count(store: Path) -> int:
    with open_store(store) as con:
        return con.execute("SELECT count(*) FROM decisions").fetchone()[0]


def test_a_multiprocessing_fork_worker_that_returns_keeps_its_records(tmp_path: Path) -> None:
    store = tmp_path / "store"
    log = AuditLog(store)  # created before the workers: each becomes a writer of its own

    def worker() -> None:
        for i in range(1000):
            log.append(event(i))
        # returns normally: multiprocessing ends the child with os._exit after run()

    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=worker) for _ in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(30)
    assert [p.exitcode for p in procs] == [0, 0]
    log.close()
    assert _count(store) == 2000
