"""In durable mode a decision that the store refuses is acknowledged once its spill
file is fsync'd, but the spill file's directory entry is not: the first spill creates
`spill/W.jsonl` and never fsyncs `spill/` (the hot files do: `writer._open` calls
`fsync_dir` in durable mode). After a power loss the fsync'd file can be missing from its
directory, and with it decisions whose tools already ran."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest
from audit_kit import event

from guard.audit import AuditLog


async def test_a_durable_decision_spilled_is_acknowledged_after_its_directory_entry(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    synced: list[str] = []
    real_fsync = os.fsync

    def recording_fsync(fd: int) -> None:
        synced.append(os.path.realpath(f"/proc/self/fd/{fd}"))
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", recording_fsync)

    def disk_full(table: str, rows: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    store = tmp_path / "s"
    log = AuditLog(store, durable=True, write_hook=disk_full, flush_interval=3600)
    try:
        ev = event(0)
        log.append(ev)
        assert await log.wait_durable(ev.decision_id, timeout=10)
        spill_dir = str((store / "spill").resolve())
        spill_file = str(log._spill.path.resolve())
        assert spill_file in synced  # the rows are fsync'd ...
        assert spill_dir in synced, "... but not the new file's directory entry"
    finally:
        log.close()
