"""A writer adopts the spilled rows of a writer that died while it runs, not only when it
starts. Found in review: adoption happened only in `AuditLog.__init__`, so under
`uvicorn --workers N` the rows a killed worker spilled (its store's disk was full) stayed
out of the store until some worker restarted: for a server that runs for months, never.
Readers and `verify` did not see them meanwhile."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from audit_kit import SPILLING_ON_A_FULL_DISK, append_decisions, run_script

import guard.audit._writing as writing
from guard.audit import AuditLog, open_store, verify

# the worker's 10 rows are spilled (fsync'd), then it is killed
DIES_AFTER_SPILLING = SPILLING_ON_A_FULL_DISK + "import os\nos.kill(os.getpid(), 9)\n"


def stored(store: Path) -> int:
    with open_store(store) as con:
        (n,) = con.execute("SELECT count(*) FROM decisions").fetchone()
    return int(n)


def test_a_running_writer_adopts_the_spill_of_a_worker_killed_since_it_started(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(writing, "ADOPT_SECONDS", 0.2, raising=False)
    store = tmp_path / "store"
    survivor = AuditLog(store, flush_interval=0.05)
    try:
        append_decisions(survivor, 100, 5)
        assert survivor.flush(10)
        run_script(DIES_AFTER_SPILLING, store, returncode=-9)
        assert [p for p in (store / "spill").glob("*.jsonl") if p.stat().st_size]
        deadline = time.monotonic() + 10
        while stored(store) < 15 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert stored(store) == 15
        assert survivor.stats()["reloaded_from_spill"] == 10
    finally:
        survivor.close()
    assert stored(store) == 15  # each once
    assert verify(store).ok


def test_a_live_writers_spill_is_left_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Adoption takes only files whose writer let go of them: a live writer's own spill
    (its store refusing writes) stays its own."""
    monkeypatch.setattr(writing, "ADOPT_SECONDS", 0.05, raising=False)
    store = tmp_path / "store"
    failing = [True]

    def hook(table: str, rows: int) -> None:
        if failing[0]:
            raise OSError(28, "No space left on device")

    spilling = AuditLog(store, write_hook=hook, flush_interval=3600)
    other = AuditLog(store, flush_interval=0.05)
    try:
        append_decisions(spilling, 0, 10)
        assert spilling.flush(10)
        assert spilling.stats()["spill_pending"] == 10
        time.sleep(0.5)  # many of the other writer's adoption rounds
        assert other.stats()["reloaded_from_spill"] == 0
        assert spilling.stats()["spill_pending"] == 10
        failing[0] = False
    finally:
        other.close()
        spilling.close()
    assert stored(store) == 10
    assert verify(store).ok
