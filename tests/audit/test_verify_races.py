"""`verify` while a compaction deletes files it listed (found in a stress review): it
lists and reads again instead of failing. The compaction runs at the exact moment the
race needs it."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest
from audit_kit import append_calls

from guard.audit import AuditLog, compact, verify

verify_mod = sys.modules["guard.audit.verify"]  # (`guard.audit.verify` is the function)
writer_mod = sys.modules["guard.audit.writer"]


def _fill(store: Path, flushes: int, per_flush: int) -> None:
    log = AuditLog(store, segment_rows=per_flush)
    for f in range(flushes):
        append_calls(log, f * per_flush, per_flush)
        log.flush()
    log.close()


def test_verify_survives_compaction_between_listing_and_reading(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """(a) verify lists a table's segments; before it reads them a compaction merges them
    and (grace=0) deletes them. Readers (`open_store`) retry on the fresh list; verify must
    too, instead of raising duckdb's IOException."""
    store = tmp_path / "s"
    _fill(store, 6, 20)
    assert verify(store).ok

    real_scan = verify_mod.scan_segments
    fired: list[bool] = []

    def scan_then_compact(directory: Path, *args: Any, **kwargs: Any) -> Any:
        listed = real_scan(directory, *args, **kwargs)
        if not fired and directory.name == "decisions":
            fired.append(True)
            compact(store, grace=0)  # merges and deletes what was just listed
        return listed

    monkeypatch.setattr(verify_mod, "scan_segments", scan_then_compact)
    report = verify(store)  # raises duckdb.IOException: No files found that match ...
    assert fired
    assert report.ok, report.problems
    assert report.rows == 2 * 120


def test_verify_survives_compaction_before_physical_order_check(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """(a), the site seen in the stress run: verify reads the rows, and before
    `_check_physical_order` reads the same file list again, a compaction (grace=0) has
    deleted the segments."""
    store = tmp_path / "s"
    _fill(store, 6, 20)
    real_check = verify_mod._check_rows
    fired: list[bool] = []

    def check_then_compact(table: str, *args: Any) -> None:
        real_check(table, *args)
        if not fired and table == "decisions":
            fired.append(True)
            compact(store, grace=0)

    monkeypatch.setattr(verify_mod, "_check_rows", check_then_compact)
    report = verify(store)
    assert fired
    assert report.ok, report.problems
    assert report.rows == 2 * 120
