"""Retention decides what to delete by the rows' `ts`, and `verify` then checks only what
is left: an attacker who back-dates recent rows (breaking their hashes) had the next
scheduled retention delete them and write an anchor that made the store verify clean
(found in review). Retention now deletes only rows that still verify."""

from __future__ import annotations

import json
import os
from pathlib import Path

import duckdb
import pytest
from audit_kit import event
from click.testing import CliRunner

from guard.audit import AuditLog, apply_retention, verify
from guard.audit.schema import GENESIS, TABLES, TIMESTAMP_COLUMNS, chain_hash
from guard.cli import main
from guard.errors import AuditError

OLD = "TIMESTAMPTZ '2000-01-01 00:00:00+00'"


@pytest.fixture
def store(tmp_path: Path) -> Path:
    """20 recent decisions of one writer in one segment."""
    path = tmp_path / "s"
    log = AuditLog(path)
    for i in range(20):
        log.append(event(i))
    log.close()
    assert verify(path).ok
    return path


def _segment(store: Path) -> Path:
    (segment,) = sorted((store / "decisions").glob("*.parquet"))
    return segment


def _rewrite(segment: Path, query: str) -> None:
    tmp = segment.with_name("tampered.tmp")
    rows = query.format(t=f"read_parquet('{segment}')")
    con = duckdb.connect()
    con.execute(f"COPY ({rows}) TO '{tmp}' (FORMAT parquet)")
    con.close()
    os.replace(tmp, segment)


def _backdate(store: Path, upto: int) -> None:
    """Rows 1..`upto` back-dated to 2000, hashes left as they were."""
    _rewrite(
        _segment(store),
        f"SELECT * REPLACE (CASE WHEN seq <= {upto} THEN {OLD} ELSE ts END AS ts) FROM {{t}}",
    )


def _backdate_and_rechain(store: Path, upto: int) -> None:
    """Rows 1..`upto` back-dated and chained again from the start, every hash recomputed."""
    segment = _segment(store)
    _backdate(store, upto)
    names = [name for name, _ in TABLES["decisions"]]
    con = duckdb.connect()
    cols = ", ".join(f"epoch_us({n})" if n in TIMESTAMP_COLUMNS else n for n in names)
    rows = con.execute(f"SELECT {cols} FROM read_parquet('{segment}') ORDER BY seq").fetchall()
    prev, fixed = GENESIS, {}
    for row in rows:
        values = list(row)
        if values[-3] > upto:
            break
        values[-2] = prev
        fixed[values[-3]] = (prev, chain_hash("decisions", values[:-1]))
        prev = fixed[values[-3]][1]
    cases = " ".join(f"WHEN {seq} THEN '{p}'" for seq, (p, _) in fixed.items())
    hashes = " ".join(f"WHEN {seq} THEN '{h}'" for seq, (_, h) in fixed.items())
    con.close()
    _rewrite(
        segment,
        f"SELECT * REPLACE (CASE seq {cases} ELSE prev_hash END AS prev_hash, "
        f"CASE seq {hashes} ELSE hash END AS hash) FROM {{t}}",
    )


def test_back_dated_rows_are_not_deleted_behind_a_clean_anchor(store: Path) -> None:
    _backdate(store, 10)
    assert not verify(store).ok
    with pytest.raises(AuditError, match=r"decisions writer \w+ seq 1\b.*verify"):
        apply_retention(store, days=180)
    report = verify(store)  # nothing was deleted: the tampering still shows
    assert report.rows == 20 and report.first is not None and report.first.seq == 1
    assert not (store / "anchors").exists() or not list((store / "anchors").iterdir())


def test_back_dated_rows_chained_again_are_not_deleted(store: Path) -> None:
    """Each row hashes, but the last one no longer leads to the first row kept."""
    _backdate_and_rechain(store, 10)
    assert not verify(store).ok
    with pytest.raises(AuditError, match=r"seq 10\b"):
        apply_retention(store, days=180)
    assert not verify(store).ok


def test_a_whole_chain_back_dated_and_chained_again_is_not_deleted(store: Path) -> None:
    """No row is kept to lead to: the last one must be the one the writer's head names."""
    _backdate_and_rechain(store, 20)
    assert not verify(store).ok
    with pytest.raises(AuditError, match=r"seq 20\b"):
        apply_retention(store, days=180)
    assert not verify(store).ok


def test_the_cli_refuses_and_says_why(store: Path) -> None:
    _backdate(store, 5)
    result = CliRunner().invoke(main, ["retention", str(store), "--days", "180"])
    assert result.exit_code == 1
    assert "retention refused" in result.output and "mcp-guard verify" in result.output


def test_untouched_rows_are_still_cut_and_verify(store: Path) -> None:
    """The same store, untouched, all rows old: retention deletes them and verifies."""
    from datetime import UTC, datetime, timedelta

    dropped = apply_retention(store, days=1, now=datetime.now(UTC) + timedelta(days=2))
    assert dropped["decisions"] == 20
    report = verify(store)
    assert report.ok and report.rows == 0
    anchor = json.loads(next((store / "anchors").glob("decisions-*.json")).read_text())
    assert anchor["first_seq"] == 21
