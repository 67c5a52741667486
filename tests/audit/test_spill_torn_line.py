"""A spill line torn part-way (the local disk filled up mid-write, or the process died
mid-write) has no newline: found in review, the next row spilled was glued to it, and the
two went to `.rejected` as one line. Only the torn piece is set aside; the row after it
is loaded back. (A write the disk refuses part-way is cut back off the file now: no piece
is left to set aside unless the process dies mid-write.)"""

from __future__ import annotations

import errno
import json
from pathlib import Path

from audit_kit import SPILLING_ON_A_FULL_DISK, event, run_script

from guard.audit import AuditLog, open_store, verify

_SCRIPT = (
    SPILLING_ON_A_FULL_DISK
    + r"""
size = log._spill.path.stat().st_size
soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
# the local disk fills up too, part-way through the first line of the next batch (EFBIG)
resource.setrlimit(resource.RLIMIT_FSIZE, (size + 50, hard))
for i in range(10, 30):
    log.append(event(i))
log.flush()  # the store refuses; the spill takes part of the batch, then fails
resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
log.flush()  # space is back on the local disk: the 20 rows kept in memory are spilled
print("spilled", log.stats()["unsaved"], log.stats()["spill_pending"], flush=True)
failing[0] = False  # the store is back
log.close()
"""
)


def test_a_spill_write_torn_by_a_full_disk_is_cut_back_and_its_rows_stored_once(
    tmp_path: Path,
) -> None:
    store = tmp_path / "s"
    proc = run_script(_SCRIPT, str(store))
    assert "spilled 0 30" in proc.stdout, proc.stdout
    with open_store(store) as con:
        total, distinct = con.execute(
            "SELECT count(*), count(DISTINCT decision_id) FROM decisions"
        ).fetchone()
    assert (total, distinct) == (30, 30)
    assert verify(store).ok
    assert not list((store / "spill").glob("*.rejected"))  # no torn piece was left


def test_a_torn_line_left_by_a_writer_that_died_does_not_take_the_next_row_with_it(
    tmp_path: Path,
) -> None:
    def always_fail(table: str, rows: int) -> None:
        raise OSError(errno.EIO, "I/O error")

    store = tmp_path / "s"
    dead = AuditLog(store, write_hook=always_fail)
    for i in range(5):
        dead.append(event(i))
    dead.close()  # its 5 rows stay in its spill file
    (orphan,) = (store / "spill").glob("*.jsonl")
    lines = orphan.read_bytes().splitlines(keepends=True)
    piece = lines[2][:40]  # a write torn here, then the rest written after it
    orphan.write_bytes(b"".join([*lines[:2], piece, *lines[2:]]))
    heir = AuditLog(store)
    heir.close()
    with open_store(store) as con:
        ids = {i for (i,) in con.execute("SELECT decision_id FROM decisions").fetchall()}
    assert len(ids) == 5 and verify(store).ok
    (rejected,) = (store / "spill").glob("*.rejected")
    assert rejected.read_bytes().splitlines() == [piece]
    assert heir.stats()["spill_rejected"] == 1
    assert json.loads(lines[2])["t"] == "decisions"
