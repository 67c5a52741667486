"""Retention while a writer's handed-over hot file (its conversion kept failing, so the
writer let go of it and converted its later files) is not yet converted by `compact`."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from audit_kit import event

from guard.audit import AuditLog, apply_retention, compact, open_store, verify
from guard.audit import writer as writer_module
from guard.audit.segments import scan_segments


def test_retention_after_a_handover_keeps_every_chain_verifiable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(writer_module, "HANDOVER_SECONDS", 0.0)  # as if 5 minutes passed
    store = tmp_path / "s"
    log = AuditLog(store, flush_interval=3600, segment_rows=10)
    real_convert = writer_module.convert_hot
    failed: list[Path] = []

    def first_decisions_file_fails(con: Any, directory: Path, table: str, hot: Path,
                                   **kwargs: Any) -> Path:  # fmt: skip
        if table == "decisions" and not failed:
            failed.append(hot)
            raise OSError("disk hiccup")
        return real_convert(con, directory, table, hot, **kwargs)

    monkeypatch.setattr(writer_module, "convert_hot", first_decisions_file_fails)
    for i in range(10):
        log.append(event(i))
    log.flush()  # seq 1..10 sealed; its conversion fails: handed over to `compact`
    deadline = time.monotonic() + 10
    while not log.stats()["convert_failures"] and time.monotonic() < deadline:
        time.sleep(0.02)
    for i in range(10, 20):
        log.append(event(i))
    log.close()  # seq 11..20 become a segment; seq 1..10 wait in their hot file
    assert [p.name for p in scan_segments(store / "decisions")[1]] == [failed[0].name]
    assert verify(store).ok

    # every row is older than the retention period: a retention run (daily cron) that
    # happens before `compact` takes the hot file (10 minutes untouched)
    later = datetime.now(UTC) + timedelta(days=400)
    apply_retention(store, days=180, now=later)
    report = verify(store)
    assert report.ok, [str(p) for p in report.problems]
    # and once `compact` has taken the hot file, retention drops every old row, still
    # leaving a chain that verifies
    compact(store, orphan_age=0, grace=0)
    apply_retention(store, days=180, now=later)
    report = verify(store)
    assert report.ok, [str(p) for p in report.problems]
    with open_store(store) as con:
        assert con.execute("SELECT count(*) FROM decisions").fetchone() == (0,)
