"""Several workers starting at once race to adopt the spill files of writers that
died. When an orphan's lock file vanishes between `glob` and `open` (another worker adopted
it first), `adopt_orphans` raises FileNotFoundError; `AuditLog.__init__` swallows it, and
the rows it had adopted before that are no longer marked as suspect, so rows a dead writer
had already loaded back into the store are loaded again: stored twice."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from audit_kit import PYTHON, subprocess_env

from guard.audit import AuditLog, open_store, verify

# the writer is killed after loading its spilled rows back, before rewriting its spill file
_DIE_WHILE_RELOADING = """
import errno, os, signal, sys
from audit_kit import event
from guard.audit import AuditLog, spill

failing = [True]
def hook(table, rows):
    if failing[0]:
        raise OSError(errno.ENOSPC, "No space left on device")

def die(self, rows):
    os.kill(os.getpid(), signal.SIGKILL)

log = AuditLog(sys.argv[1], write_hook=hook, flush_interval=3600)
for i in range(30):
    log.append(event(i))
log.flush()
failing[0] = False
spill.SpillFile.replace = die
log.flush()
"""


def _distinct(store: Path) -> tuple[int, int]:
    with open_store(store) as con:
        row = con.execute("SELECT count(*), count(DISTINCT decision_id) FROM decisions").fetchone()
    return int(row[0]), int(row[1])


def test_an_orphan_adopted_by_another_worker_meanwhile_does_not_store_rows_twice(
    tmp_path: Path,
) -> None:
    store = tmp_path / "s"
    proc = subprocess.run(
        [PYTHON, "-c", _DIE_WHILE_RELOADING, str(store)], env=subprocess_env(),
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert proc.returncode == -9, proc.stderr
    assert _distinct(store) == (30, 30)
    # A second dead writer's lock, listed by `glob` but gone by the time it is opened: what
    # a worker sees when the worker starting beside it adopted (and unlinked) it first.
    # (A dangling link makes that moment deterministic.)
    os.symlink(store / "spill" / "gone-meanwhile", store / "spill" / "zzzz-other-worker.lock")
    heir = AuditLog(store)
    heir.close()
    assert _distinct(store) == (30, 30)
    assert verify(store).ok
