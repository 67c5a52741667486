"""Durable mode: a group commit whose fsync fails, and whose lines cannot be cut back off
the hot file either, leaves those lines there as rows of the chain (see
`test_a_failed_write_that_cannot_be_cut_back_keeps_its_landed_rows_once`). Found in
review: they were acknowledged as durable, so their calls ran, though nothing had synced
them. Their waiters now learn that they are not durable, and the calls are denied."""

from __future__ import annotations

import asyncio
import errno
from pathlib import Path

import pytest
from audit_kit import event

from guard.audit import AuditLog, open_store, verify
from guard.audit import writer as writer_module


async def test_lines_left_in_the_hot_file_by_a_failed_sync_are_not_acknowledged(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = tmp_path / "s"
    log = AuditLog(store, durable=True, flush_interval=3600)
    first = event(0)
    log.append(first)
    assert await log.wait_durable(first.decision_id, timeout=10)  # the hot file is open
    hot_fd = log._writer._hot["decisions"].fd
    os = writer_module.os
    fsync, truncate = os.fsync, os.ftruncate

    def failing_fsync(fd: int) -> None:
        if fd == hot_fd:
            raise OSError(errno.EIO, "Input/output error")
        fsync(fd)

    def failing_truncate(fd: int, length: int) -> None:
        if fd == hot_fd:
            raise OSError(errno.EIO, "Input/output error")
        truncate(fd, length)

    monkeypatch.setattr(os, "fsync", failing_fsync)
    monkeypatch.setattr(os, "ftruncate", failing_truncate)
    events = [event(i) for i in range(1, 6)]
    for ev in events:
        log.append(ev)
    acknowledged = await asyncio.gather(
        *(log.wait_durable(ev.decision_id, timeout=5) for ev in events)
    )
    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "ftruncate", truncate)
    assert acknowledged == [False] * 5  # written, never synced: no call may run on them
    log.close()
    with open_store(store) as db:  # still rows of the chain, each stored once
        assert db.sql("SELECT count(DISTINCT decision_id), count(*) FROM decisions").fetchall() == [
            (6, 6)
        ]
    assert verify(store).ok
