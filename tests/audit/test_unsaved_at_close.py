"""Rows the store and the spill file both refused wait in memory (`unsaved`) and are
retried at each flush. Found in review: close() left them there, seen only in
`stats()["unsaved"]`: dropped when the writer thread was stuck (close() spilled the queue
and the slice it held, not them), and without a word when nothing would take them."""

from __future__ import annotations

import errno
import json
import threading
from pathlib import Path

import pytest
from audit_kit import RAW_API_KEY, append_decisions, event, spill_dir_gone

from guard.audit import AuditLog, open_store, verify
from guard.telemetry.metrics import AuditCollector


def _spilled_ids(directory: Path) -> list[str]:
    return [
        json.loads(json.loads(line)["b"] + "}")["decision_id"]
        for path in directory.glob("*.jsonl")
        for line in path.read_bytes().splitlines()
    ]  # fmt: skip


def test_close_with_a_stuck_write_spills_the_rows_waiting_in_memory(tmp_path: Path) -> None:
    state = {"mode": "fail"}
    entered, release = threading.Event(), threading.Event()

    def hook(table: str, rows: int) -> None:
        if state["mode"] == "fail":
            raise OSError(errno.ENOSPC, "No space left on device")
        entered.set()
        release.wait(30)

    store = tmp_path / "s"
    log = AuditLog(store, write_hook=hook, spill_dir=tmp_path / "spill", flush_interval=3600)
    spill = spill_dir_gone(log)
    ids = append_decisions(log, 0, 20)
    assert log.flush(10)
    assert log.stats()["unsaved"] == 20  # neither the store nor the spill took them
    spill.unlink()
    spill.mkdir()  # the spill directory is back; the store now hangs
    state["mode"] = "hang"
    ids |= append_decisions(log, 20, 1)
    log._wake.set()
    assert entered.wait(10)  # stuck writing that one row, the 20 still in memory
    try:
        log.close(timeout=0.5)
        # (if the process exited now) every record is in the store or in a spill file
        assert sorted(set(_spilled_ids(spill))) == sorted(ids)
    finally:
        release.set()
        log._thread.join(10)
    heir = AuditLog(store, spill_dir=spill)
    heir.close()
    with open_store(store) as con:
        total, distinct = con.execute(
            "SELECT count(*), count(DISTINCT decision_id) FROM decisions"
        ).fetchone()
    assert (total, distinct) == (21, 21)
    assert verify(store).ok


def test_rows_nothing_would_take_at_close_are_counted_and_logged(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    def hook(table: str, rows: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    log = AuditLog(
        tmp_path / "s", write_hook=hook, spill_dir=tmp_path / "spill", flush_interval=3600
    )
    spill_dir_gone(log)
    for i in range(20):
        log.append(event(i, args={"api_key": RAW_API_KEY, "i": i}))
    assert log.flush(10)
    assert log.stats()["unsaved"] == 20
    with caplog.at_level("ERROR", logger="guard.audit"):
        log.close()
    stats = log.stats()
    assert stats["unsaved"] == 0 and stats["lost"] == 20
    assert "20 audit records lost" in caplog.text and RAW_API_KEY not in caplog.text
    collector = AuditCollector()
    collector.add(log.stats)
    values = {m.name: m.samples[0].value for m in collector.collect()}
    assert values["mcpguard_audit_rows_failed"] >= stats["failed"] + 20
