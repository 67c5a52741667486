"""A writer does not keep the list of its top-level roll-ups: they are never merged again
by it. Found in review: each was appended to a list nothing read or emptied, so a quiet
server that runs for months gained an entry every few hours per table, for ever."""

from __future__ import annotations

from pathlib import Path

import pytest
from audit_kit import append_decisions

import guard.audit.writer as writer
from guard.audit import AuditLog, open_store, verify


def test_top_level_roll_ups_are_not_listed_for_merging(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(writer, "ROLLUP_FANIN", 2)
    store = tmp_path / "s"
    log = AuditLog(store, segment_rows=1)
    for i in range(16):  # 16 level-0 segments: 8 at level 1, 4 at level 2 (the top)
        append_decisions(log, i, 1)
        assert log.flush(10)
    log.close()  # (converts the last hot files, rolling up as it goes)
    own = log._writer._own
    assert sum(len(own[("decisions", level)]) for level in range(3)) < 16  # rolled up
    assert own[("decisions", writer.ROLLUP_LEVELS)] == []
    with open_store(store) as con:
        assert con.execute("SELECT count(*) FROM decisions").fetchone() == (16,)
    assert verify(store).ok
