"""A small spill write (under the file buffer's size) that the local disk refuses part-way
keeps its unwritten end in the spill file's buffer; the load-back's rewrite then fails
while closing that file (it flushes the buffer again), and the spill file was left
closed: found in review, every later spill write raised ValueError, not OSError, so the
batches that failed next were neither spilled nor kept in memory: lost, uncounted."""

from __future__ import annotations

from pathlib import Path

from audit_kit import SPILLING_ON_A_FULL_DISK, run_script

from guard.audit import open_store, verify

_SCRIPT = (
    SPILLING_ON_A_FULL_DISK
    + r"""
size = log._spill.path.stat().st_size
soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
# the local disk fills up too, part-way through the next (small) spill write
resource.setrlimit(resource.RLIMIT_FSIZE, (size + 50, hard))
for i in range(10, 12):
    log.append(event(i))
time.sleep(1.1)  # the load-back of a failing store is retried in this flush
log.flush()
resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))  # space is back
for i in range(12, 14):
    log.append(event(i))
log.flush()  # the store still refuses: these are spilled
stats = log.stats()
print("after", stats["unsaved"], stats["spill_pending"], stats["lost"], flush=True)
failing[0] = False  # the store is back
log.close()
stats = log.stats()
print("closed", stats["unsaved"], stats["spill_pending"], stats["lost"], flush=True)
"""
)


def test_small_spill_writes_refused_part_way_lose_no_record(tmp_path: Path) -> None:
    store = tmp_path / "s"
    proc = run_script(_SCRIPT, str(store))
    assert "audit writer failed a flush" not in proc.stderr, proc.stderr
    assert "closed 0 0 0" in proc.stdout, proc.stdout
    with open_store(store) as con:
        total, distinct = con.execute(
            "SELECT count(*), count(DISTINCT decision_id) FROM decisions"
        ).fetchone()
    assert (total, distinct) == (14, 14), (proc.stdout, proc.stderr[-3000:])
    assert verify(store).ok
