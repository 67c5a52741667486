"""A store removed or moved from under a running writer: the records decided after that
are kept at the store's path, never counted written while they went nowhere. Found in
review: the writer kept appending to its open hot file after the store directory was
deleted (`rm -r`, a cleanup job) or replaced, so every later record went to a file no
name reached any more: counted `written`, acknowledged in durable mode, and gone."""

from __future__ import annotations

import os
import shutil
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
