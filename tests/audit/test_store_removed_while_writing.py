"""A store removed or moved from under a running writer: the records decided after that
are kept at the store's path, never counted written while they went nowhere. Found in
review: the writer kept appending to its open hot file after the store directory was
deleted (`rm -r`, a cleanup job) or replaced, so every later record went to a file no
name reached any more: counted `written`, acknowledged in durable mode, and gone."""

from __future__ import annotations

import errno
import os
import shutil
import time
from pathlib import Path

import pytest
from audit_kit import event

from guard.audit import AuditLog, open_store


def _ids(store: Path) -> set[str]:
    with open_store(store) as s:
        return {r[0] for r in s.sql("SELECT decision_id FROM decisions").fetchall()}


@pytest.mark.parametrize("durable", [False, True])
@pytest.mark.parametrize("how", ["deleted", "moved", "table deleted", "hot file replaced"])
def test_records_after_the_store_went_are_kept_at_its_path(
    tmp_path: Path, how: str, durable: bool
) -> None:
    store = tmp_path / "store"
    log = AuditLog(store, flush_interval=3600, durable=durable)
    try:
        log.append(event(0))
        assert log.flush()
        if how == "deleted":
            shutil.rmtree(store)
        elif how == "moved":
            store.rename(tmp_path / "store.old")
        elif how == "table deleted":
            shutil.rmtree(store / "decisions")
        else:
            (hot,) = (store / "decisions").glob("*.jsonl")
            (tmp_path / "other").write_text("")
            os.replace(tmp_path / "other", hot)
        later = [event(i) for i in range(1, 6)]
        for e in later:
            log.append(e)
        assert log.flush()
    finally:
        log.close()
    assert {e.decision_id for e in later} <= _ids(store)


@pytest.mark.parametrize(
    "how", ["store deleted", "store replaced", "spill deleted", "spill file replaced"]
)
def test_records_spilled_after_the_spill_file_went_are_kept(tmp_path: Path, how: str) -> None:
    # the same for the spill file (open from the start): rows spilled to a file no name
    # reaches any more were never loaded back, though counted spilled
    failing = [False]

    def hook(table: str, rows: int) -> None:  # the store's disk fills up
        if failing[0]:
            raise OSError(errno.ENOSPC, "No space left on device")

    store = tmp_path / "store"
    log = AuditLog(store, write_hook=hook, flush_interval=3600)
    try:
        log.append(event(0))
        assert log.flush()
        if how == "store deleted":
            shutil.rmtree(store)
        elif how == "store replaced":  # by a file, for a while
            shutil.rmtree(store)
            store.write_text("")
        elif how == "spill deleted":
            shutil.rmtree(store / "spill")
        else:
            (tmp_path / "other").write_text("")
            os.replace(tmp_path / "other", log._spill.path)
        failing[0] = True
        later = [event(i) for i in range(1, 6)]
        for e in later:
            log.append(e)
        assert log.flush()
        if how == "store replaced":  # nowhere to spill: kept in memory meanwhile
            assert log.stats()["spill_failed"] == 5
            store.unlink()
        else:
            assert log.stats()["spilled"] == 5
        failing[0] = False
        time.sleep(1.1)  # past the retry interval of a store that failed
        assert log.flush()
    finally:
        log.close()
    assert {e.decision_id for e in later} <= _ids(store)
