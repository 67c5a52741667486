"""A relation (`store.sql(...)`) lists the files when it is made and opens them when it
is fetched. `compact` and retention convert the hot files of a writer that died
(`kill -9`): the hot file must stay beside its new segment for the grace replaced files
get, as a writer's own conversion keeps it, or a relation made before the maintenance
run fails when fetched (found in review: `IOException: No files found`)."""

from __future__ import annotations

from pathlib import Path

import pytest
from audit_kit import run_script

from guard.audit import apply_retention, compact, maintenance, open_store, verify

# a writer that dies (no close, no conversion) with 10 calls in its hot files
_DIES = """
import os, sys
from audit_kit import append_calls
from guard.audit import AuditLog

log = AuditLog(sys.argv[1], flush_interval=3600)
append_calls(log, 0, 10)
log.flush()
os._exit(0)
"""


def test_a_relation_made_before_compact_converts_a_dead_writers_hot_file(
    tmp_path: Path,
) -> None:
    store = tmp_path / "s"
    run_script(_DIES, store)
    with open_store(store) as reader:
        relation = reader.sql("SELECT count(*) FROM decision_log")
        compact(store, orphan_age=0)  # converts the dead writer's hot files
        assert list((store / "decisions").glob("*.parquet"))
        assert relation.fetchall() == [(10,)]
        compact(store, orphan_age=0)  # a second run within the grace keeps them too
        assert relation.fetchall() == [(10,)]
        assert reader.sql("SELECT count(*) FROM decision_log").fetchall() == [(10,)]
        compact(store, orphan_age=0, grace=0)  # at once, as for replaced segments
        assert not list((store / "decisions").glob("*.jsonl"))
        assert reader.sql("SELECT count(*) FROM decision_log").fetchall() == [(10,)]
    assert verify(store).ok


def test_a_relation_made_before_retention_converts_a_dead_writers_hot_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(maintenance, "ORPHAN_SECONDS", 0.0)  # as if 10 minutes had passed
    store = tmp_path / "s"
    run_script(_DIES, store)
    with open_store(store) as reader:
        relation = reader.sql("SELECT count(*) FROM decision_log")
        assert apply_retention(store, days=1)["decisions"] == 0  # nothing old: converted only
        assert relation.fetchall() == [(10,)]
        assert reader.sql("SELECT count(*) FROM decision_log").fetchall() == [(10,)]
    assert verify(store).ok
