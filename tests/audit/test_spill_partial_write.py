"""A spill write that fails part-way (the local disk fills up too) leaves complete
lines of the batch in the spill file while the batch is also kept in memory (`unsaved`):
once the store is back, both copies are loaded and the rows are stored twice."""

from __future__ import annotations

from pathlib import Path

from audit_kit import SPILLING_ON_A_FULL_DISK, run_script

from guard.audit import open_store

_SCRIPT = (
    SPILLING_ON_A_FULL_DISK
    + r"""
assert log.stats()["spill_pending"] == 10, log.stats()
size = log._spill.path.stat().st_size
soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
# the local disk fills up too: room for about half of the next batch (a real EFBIG)
resource.setrlimit(resource.RLIMIT_FSIZE, (size + size // 2, hard))
for i in range(10, 30):
    log.append(event(i))
log.flush()  # store refuses; the spill takes part of the batch, then fails
resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
print("after", log.stats()["unsaved"], log.stats()["spill_pending"], flush=True)
failing[0] = False  # space is back
log.close()
print("closed", log.stats()["unsaved"], log.stats()["spill_pending"], flush=True)
"""
)


def test_a_spill_write_that_fails_part_way_stores_its_rows_once(tmp_path: Path) -> None:
    store = tmp_path / "s"
    proc = run_script(_SCRIPT, str(store))
    assert "after 20 10" in proc.stdout, proc.stdout  # the batch waited in memory
    with open_store(store) as con:
        total, distinct = con.execute(
            "SELECT count(*), count(DISTINCT decision_id) FROM decisions"
        ).fetchone()
    assert (total, distinct) == (30, 30), proc.stdout
