"""A record spilled on the request path (queue full, durable mode) that cannot be synced
makes `append` fail, and the call is denied (fail closed). Found in review: the line was
already in the spill file, and was loaded back: the store said the call was allowed, and
nothing said it never ran."""

from __future__ import annotations

from pathlib import Path

from audit_kit import run_script

from guard.audit import open_store

_SCRIPT = r"""
import os, resource, sys, threading
from audit_kit import event
from guard.audit import AuditLog

entered, release = threading.Event(), threading.Event()
def hook(table, rows):  # the store's write hangs for a while
    entered.set()
    release.wait(30)

log = AuditLog(sys.argv[1], durable=True, max_queue=1, write_hook=hook, flush_interval=3600)
log.append(event(0))
assert entered.wait(10)  # the writer is stuck writing it
log.append(event(1))  # the queue is full now: the next record is spilled on the request path
# The process runs out of file descriptors: the spilled line is written and fsync'd, but
# its new file's directory entry cannot be synced (as when the disk fails an fsync).
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (256, hard))
held = []
try:
    while True:
        held.append(os.open(os.devnull, os.O_RDONLY))
except OSError:
    pass
denied = event(2)
queued = log.append(denied)
for fd in held:
    os.close(fd)
resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
print("queued", queued, denied.decision_id, flush=True)
release.set()
log.close()
"""


def test_a_spilled_record_that_cannot_be_synced_is_not_stored(tmp_path: Path) -> None:
    store = tmp_path / "s"
    proc = run_script(_SCRIPT, str(store))
    _, queued, denied = proc.stdout.split()
    assert queued == "False", proc.stdout  # the middleware denies that call
    with open_store(store) as con:
        stored = {i for (i,) in con.execute("SELECT decision_id FROM decisions").fetchall()}
    assert len(stored) == 2, proc.stderr
    assert denied not in stored  # no record says the call was allowed
    assert not [p for p in (store / "spill").glob("*.jsonl") if p.stat().st_size]
