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


def _compacts_once(store: Path) -> tuple[list[bool], Any]:
    """A list that says whether it ran, and a function that compacts `store` (grace=0:
    the files merged are deleted at once) the first time it is called."""
    fired: list[bool] = []

    def compact_once() -> None:
        if not fired:
            fired.append(True)
            compact(store, grace=0)

    return fired, compact_once


def _verifies_whole(store: Path, fired: list[bool]) -> None:
    report = verify(store)
    assert fired
    assert report.ok, report.problems
    assert report.rows == 2 * 120


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
    fired, compact_once = _compacts_once(store)

    def scan_then_compact(directory: Path, *args: Any, **kwargs: Any) -> Any:
        listed = real_scan(directory, *args, **kwargs)
        if directory.name == "decisions":
            compact_once()  # merges and deletes what was just listed
        return listed

    monkeypatch.setattr(verify_mod, "scan_segments", scan_then_compact)
    # (it raised duckdb.IOException: No files found that match ...)
    _verifies_whole(store, fired)


def test_verify_survives_compaction_before_physical_order_check(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """(a), the site seen in the stress run: verify reads the rows, and before
    `_check_physical_order` reads the same file list again, a compaction (grace=0) has
    deleted the segments. (Verify walks the chains so, reading twice, when its one pass
    finds something wrong: made to here.)"""
    store = tmp_path / "s"
    _fill(store, 6, 20)
    monkeypatch.setattr(verify_mod, "_sound_chains", lambda *args: None)
    real_check = verify_mod._check_rows
    fired, compact_once = _compacts_once(store)

    def check_then_compact(table: str, *args: Any) -> None:
        real_check(table, *args)
        if table == "decisions":
            compact_once()

    monkeypatch.setattr(verify_mod, "_check_rows", check_then_compact)
    _verifies_whole(store, fired)


def test_verify_survives_compaction_during_its_one_pass(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """(a) in the one pass over a sound store: a compaction (grace=0) merges and deletes
    the segments while their rows are being read, a few at a time."""
    store = tmp_path / "s"
    _fill(store, 6, 20)
    fired, compact_once = _compacts_once(store)

    def fetch_then_compact(cur: Any) -> Any:
        while batch := cur.fetchmany(7):
            yield from batch
            compact_once()

    monkeypatch.setattr(verify_mod, "_fetch", fetch_then_compact)
    _verifies_whole(store, fired)


def test_a_query_sees_each_listing_it_sees_with_its_items(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A writer files a new item set and appends a listing naming it to its hot file after
    a query listed the files but before it read them: the hot file is read as it grows,
    but a listing whose set the statement's `itemsets` does not list is left out of it
    (found in review: it was in `listings` with none of its items in `decisions`)."""
    from dataclasses import replace

    from audit_kit import event

    from guard.audit import open_store

    store_mod = sys.modules["guard.audit.store"]
    log = AuditLog(tmp_path / "s", flush_interval=3600)
    hidden = replace(event(0).decision, allowed=False, reason="default", rule=None)

    def listing(name: str, n: int) -> None:
        events = [
            replace(event(i, method="tools/list", action="list", args={}), decision=hidden,
                    decision_id=f"{name}.{i + 1}")
            for i in range(n)
        ]  # fmt: skip
        log.append_listing(name, events)
        log.flush()

    listing("A", 2)
    listed = store_mod.AuditStore._refresh
    written: list[str] = []

    def then_a_listing_is_written(self: Any, force: bool = False) -> None:
        listed(self, force)
        if not written:
            written.append("B")
            listing("B", 3)  # the writer goes on writing, to the same hot file

    try:
        with open_store(tmp_path / "s") as db:
            monkeypatch.setattr(store_mod.AuditStore, "_refresh", then_a_listing_is_written)
            counts = db.sql(
                "SELECT (SELECT sum(CASE WHEN decision_id = 'A' THEN 2 ELSE 3 END) FROM "
                "listings), (SELECT count(*) FROM decisions)"
            ).fetchall()
    finally:
        log.close()
    assert counts[0][0] == counts[0][1]
