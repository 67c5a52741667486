"""Temporary files a crash leaves in the store: every write into it goes to a hidden
`.<name>….tmp` first and renames it into place, so a process that dies in between leaves
the temporary file. Maintenance deletes those no live process may still rename: untouched
for `ORPHAN_SECONDS`, and (a conversion's) whose hot file no writer holds."""

from __future__ import annotations

import fcntl
import os
import time
from pathlib import Path
from typing import Any

import pytest
from audit_kit import run_script

from guard.audit import AuditLog, apply_retention, compact, open_store, verify
from guard.audit.maintenance import ORPHAN_SECONDS

# argv[1]: the store; argv[2]: the directory of the store whose first rename of a temporary
# file the process does not live to do; argv[3]: what it was doing then.
DIES_BEFORE_A_RENAME = r"""
import os, sys
from audit_kit import append_calls, event
from guard.audit import AuditLog, compact
from guard.policy.model import Resource

store, directory, doing = sys.argv[1:4]
real_replace = os.replace

def replace(src, dst):
    if str(src).endswith(".tmp") and os.path.basename(os.path.dirname(dst)) == directory:
        os._exit(9)  # killed between writing the file and renaming it into place
    real_replace(src, dst)

if doing == "compacting":  # two writers' segments to merge
    for first in (0, 10):
        log = AuditLog(store)
        append_calls(log, first, 10)
        log.close()
os.replace = replace
if doing == "compacting":
    compact(store)
elif doing == "listing":  # files the listing's item set
    log = AuditLog(store, flush_interval=3600)
    listed = [event(n, resource=Resource("tool", f"t{n}"), method="tools/list",
                    action="list") for n in range(3)]
    for n, ev in enumerate(listed, 1):
        ev.decision_id = f"L0.{n}"
    log.append_listing("L0", listed)
    log.flush()
elif doing == "spilling texts":  # the store refuses a policy set's texts: spilled
    from guard import load_policies
    log = AuditLog(store, flush_interval=3600)
    def full(digest, data, *, fsync=False):
        raise OSError(28, "No space left on device")
    log._store_policies = full
    log.record_policies(load_policies("name: p\ndefault_effect: allow\nrules: []\n"))
    log.flush()
else:  # "flushing": writes its head file, then converts its hot files at close
    log = AuditLog(store, flush_interval=3600)
    append_calls(log, 0, 10)
    log.close()
raise SystemExit(f"the {directory!r} rename never came")
"""

# what crashes: (the directory of its rename, what the writer was doing, decisions stored)
CRASHES = {
    "item set": ("itemsets", "listing", 0),  # died before its listing was written
    "head file": ("writers", "flushing", 10),
    "conversion": ("decisions", "flushing", 10),
    "compaction and its marker": ("decisions", "compacting", 20),
    "spilled policy texts": ("policies", "spilling texts", 0),
}


def _crash(store: Path, directory: str, doing: str) -> list[Path]:
    """Run a writer that dies before renaming a temporary file into `directory`; return
    the temporary files it left."""
    run_script(DIES_BEFORE_A_RENAME, store, directory, doing, returncode=9)
    left = _temporary(store)
    assert left and all(p.parent.name == directory for p in left), left
    return left


def _temporary(store: Path) -> list[Path]:
    return sorted(store.rglob(".*.tmp"))


def _age(paths: list[Path], seconds: float) -> None:
    then = time.time() - seconds
    for path in paths:
        os.utime(path, (then, then))


@pytest.mark.parametrize("crash", list(CRASHES))
@pytest.mark.parametrize("maintain", [compact, apply_retention])
def test_maintenance_deletes_the_temporary_files_a_crash_left(
    tmp_path: Path, crash: str, maintain: Any
) -> None:
    store = tmp_path / "s"
    directory, doing, decisions = CRASHES[crash]
    left = _crash(store, directory, doing)
    _age(left, ORPHAN_SECONDS - 60)  # a live writer may still be about to rename them
    maintain(store)
    assert _temporary(store) == left
    _age(left, ORPHAN_SECONDS + 60)
    maintain(store)
    assert _temporary(store) == []
    AuditLog(store).close()  # adopts what the dead writer spilled
    with open_store(store) as con:
        stored, distinct = con.execute(
            "SELECT count(*), count(DISTINCT decision_id) FROM decisions"
        ).fetchone()
    assert stored == distinct == decisions  # each once: a spilled one loaded back is not again
    assert verify(store).ok


def test_a_conversions_temporary_file_stays_while_its_hot_file_is_held(tmp_path: Path) -> None:
    """A writer holds its hot file locked until its conversion of it is done: however long
    that conversion stalls, its temporary file is its own to rename."""
    store = tmp_path / "s"
    (left,) = _crash(store, "decisions", "flushing")
    (hot,) = (store / "decisions").glob("*.jsonl")
    assert left.name.startswith(f".{hot.stem}.parquet.")
    _age([left], 86_400)
    fd = os.open(hot, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # as its writer, converting it
        compact(store)
        assert _temporary(store) == [left]
    finally:
        os.close(fd)
    compact(store)
    assert _temporary(store) == []
    with open_store(store) as con:
        assert con.execute("SELECT count(*) FROM decision_log").fetchone() == (10,)
    assert verify(store).ok
