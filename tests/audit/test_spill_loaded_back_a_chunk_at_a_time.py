"""A spill file grows for as long as the store's outage lasts: gigabytes, after an hour of
a busy server. Found in review: loading it back read the whole file into memory (and
its rows, several times its size), then rewrote it; adopting a dead writer's file read
it whole too. A server coming back from a long outage ran out of memory, and so did
each of its restarts. It is now loaded back from its end a chunk of whole lines at a
time, each chunk cut off the file once stored, and adopted a chunk at a time."""

from __future__ import annotations

import errno
import json
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar, cast

import pytest
from audit_kit import event, run_script

from guard.audit import AuditLog, open_store, spill, verify
from guard.audit.rows import OUTCOME, outcome_body

T = TypeVar("T")
CHUNK = 128 * 1024
ROWS = 6_000


def _spilled_store(store: Path) -> AuditLog:
    """A log whose store refused `ROWS` decisions, spilled; its store takes rows again."""
    failing = [True]

    def hook(table: str, rows: int) -> None:
        if failing[0]:
            raise OSError(errno.ENOSPC, "No space left on device")

    log = AuditLog(store, write_hook=hook, flush_interval=3600, max_queue=10 * ROWS)
    for i in range(ROWS):
        log.append(event(i, args={"note": f"{i:06d}" * 100}))
    assert log.flush(30)
    assert log.stats()["spill_pending"] == ROWS
    failing[0] = False
    return log


def _stored_once(store: Path) -> None:
    with open_store(store) as con:
        total, distinct = con.execute(
            "SELECT count(*), count(DISTINCT decision_id) FROM decisions"
        ).fetchone()
    assert (total, distinct) == (ROWS, ROWS)
    assert verify(store).ok


# tracemalloc counts every thread of its process, and the suite's process holds threads
# other tests left running: a CI run measured 4.4 MB there for this load-back's 0.5 MB. The
# loading back (or adopting) is measured in a process of its own.
_MEASURED = """
import json, sys
from pathlib import Path
from guard.audit import spill
import test_spill_loaded_back_a_chunk_at_a_time as t

spill.CHUNK_BYTES = t.CHUNK
print(json.dumps(getattr(t, sys.argv[1])(Path(sys.argv[2]))))
"""


def _measured(what: str, store: Path) -> dict[str, int]:
    """Run `what` (one of this module's functions) on `store` in a process of its own."""
    out = run_script(_MEASURED, what, store, timeout=240).stdout
    return cast(dict[str, int], json.loads(out.splitlines()[-1]))


def _peak(action: Callable[[], T]) -> tuple[T, int]:
    """What `action()` returns, and the peak of the memory allocated while it ran."""
    tracemalloc.start()
    try:
        return action(), tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def _load_back(store: Path) -> dict[str, int]:
    """Spill `ROWS` decisions, then load them back: the peak of memory allocated meanwhile."""
    log = _spilled_store(store)
    size = log._spill.path.stat().st_size
    time.sleep(1.1)  # past the retry interval of a store that failed

    def load_back() -> None:
        for _ in range(100):  # a flush loads back for a second at most, then the queue
            assert log.flush(30)
            if log.stats()["spill_pending"] == 0:
                break

    _, peak = _peak(load_back)
    stats = log.stats()
    left = log._spill.path.stat().st_size
    log.close()
    return {
        "peak": peak,
        "size": size,
        "left": left,
        "pending": stats["spill_pending"],
        "reloaded": stats["reloaded_from_spill"],
    }


def _adopt(store: Path) -> dict[str, int]:
    """Spill `ROWS` decisions, let go of the spill file as a writer that died, and adopt
    it in another: the peak of memory allocated meanwhile."""
    dead = _spilled_store(store)
    orphan = dead._spill
    dead._spill.close()  # let go of, its rows in it: as a writer that died
    size = orphan.path.stat().st_size
    heir = spill.SpillFile(store / "spill", "heir")
    adopted, peak = _peak(heir.adopt_orphans)
    out = {
        "peak": peak,
        "size": size,
        "adopted": adopted,
        "pending": heir.pending,
        "orphan_left": orphan.path.exists(),
        "heir_size": heir.path.stat().st_size,
    }
    heir.close()
    return out


def test_a_long_spill_is_loaded_back_in_bounded_memory(tmp_path: Path) -> None:
    store = tmp_path / "s"
    got = _measured("_load_back", store)
    assert got["size"] > 40 * CHUNK  # (~8 MB)
    assert (got["pending"], got["reloaded"], got["left"]) == (0, ROWS, 0)
    peak, size = got["peak"], got["size"]
    assert peak < size / 4, f"{peak:,} bytes at the peak, for a spill file of {size:,}"
    _stored_once(store)


def test_a_dead_writers_long_spill_is_adopted_in_bounded_memory(tmp_path: Path) -> None:
    got = _measured("_adopt", tmp_path / "s")
    assert (got["adopted"], got["pending"]) == (ROWS, ROWS)
    assert not got["orphan_left"]
    assert got["heir_size"] == got["size"]
    peak, size = got["peak"], got["size"]
    assert peak < size / 4, f"{peak:,} bytes at the peak, for a spill file of {size:,}"


def test_a_line_longer_than_a_chunk_is_loaded_back_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(spill, "CHUNK_BYTES", 1024)  # shorter than any row
    file = spill.SpillFile(tmp_path, "w")
    long = "E" * 3000  # an error class longer than a chunk
    rows = [("outcomes", outcome_body((OUTCOME, f"d{n}", n, "error", 1.0, long))) for n in range(5)]
    file.write(rows, fsync=True)
    seen = []
    while True:
        got, bad, start = file.read_tail()
        if not got and not bad:
            break
        seen[:0] = got
        file.cut(start, len(got) + len(bad))
    assert seen == rows and file.pending == 0
    file.close()


def test_a_load_back_the_store_still_refuses_whole_leaves_the_file_unsuspected(
    tmp_path: Path,
) -> None:
    """Nothing stored, nothing to check: a file made suspect by a load-back the store
    refused whole was checked against the store chunk by chunk, every row parsed and
    looked up (load-back took twice as long)."""
    failing = [True]

    def hook(table: str, rows: int) -> None:
        if failing[0]:
            raise OSError(errno.ENOSPC, "No space left on device")

    store = tmp_path / "s"
    log = AuditLog(store, write_hook=hook, flush_interval=3600)
    for i in range(20):
        log.append(event(i))
    assert log.flush(10)
    time.sleep(1.1)  # past the retry interval: the load-back is tried, and refused
    assert log.flush(10)
    assert log.stats()["reloaded_from_spill"] == 0
    assert not log._spill_suspect
    failing[0] = False
    log.close()
    with open_store(store) as con:
        assert con.execute("SELECT count(DISTINCT decision_id) FROM decisions").fetchone() == (20,)
