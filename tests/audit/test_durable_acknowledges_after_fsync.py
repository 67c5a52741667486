"""Durable mode's promise is an `fsync`: a decision is acknowledged once the hot file
holding its row is synced up to that row, and the file's directory entry too (a new hot
file). Found in review: no test could fail without them: `kill -9` leaves the page cache
intact, so the kill tests pass with both syncs removed; this one watches the syncs."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from audit_kit import event

from guard.audit import AuditLog


async def test_a_durable_decision_is_acknowledged_after_its_row_and_file_are_synced(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    synced: list[tuple[str, int]] = []  # (path, size) at each fsync
    real_fsync = os.fsync

    def recording_fsync(fd: int) -> None:
        real_fsync(fd)
        synced.append((os.path.realpath(f"/proc/self/fd/{fd}"), os.fstat(fd).st_size))

    monkeypatch.setattr(os, "fsync", recording_fsync)
    store = tmp_path / "s"
    log = AuditLog(store, durable=True, flush_interval=3600)  # no timed flushes
    try:
        for i in range(3):
            ev = event(i)
            log.append(ev)
            assert await log.wait_durable(ev.decision_id, timeout=10)
            seen = list(synced)  # what was synced when the decision was acknowledged
            (hot,) = (store / "decisions").glob(f"{log.writer_id}-*.jsonl")
            data = hot.read_bytes()
            end = data.index(b"\n", data.index(ev.decision_id.encode())) + 1
            path = os.path.realpath(hot)
            assert any(p == path and size >= end for p, size in seen), (i, seen)
            assert os.path.realpath(hot.parent) in {p for p, _ in seen}  # its entry
    finally:
        log.close()
