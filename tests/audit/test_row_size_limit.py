"""A decision row over `MAX_ROW_BYTES`, the readers' largest JSON object: redaction caps
each value (4,096 characters) but not their sum, and an in-process or stdio caller has no
body limit (a remote HTTP one is held to 4 MiB by the MCP SDK). Such a row was written as
it was: no reader could parse its hot file, and its conversion to Parquet failed at every
try. The writer now records it with each argument as `<redacted:too-big>`, listed, as
redaction does past its path budget. (The limit is lowered here: 256 MiB is not
allocated in a test.)"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
from audit_kit import ALICE, event

from guard.audit import AuditLog, open_store, segments, store, verify
from guard.audit.redact import TOO_BIG_MARK
from guard.audit.segments import scan_segments

LIMIT = 64 * 1024


@pytest.fixture
def low_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(segments, "MAX_ROW_BYTES", LIMIT)
    monkeypatch.setattr(store, "MAX_ROW_BYTES", LIMIT)


def test_a_row_over_the_limit_is_stored_with_its_arguments_as_markers(
    tmp_path: Path, low_limit: None
) -> None:
    # 16 values of 4,000 characters (each under the redactor's cap): just over the limit
    big = {f"part{i:02d}": "é" * 2_000 + "x" * 2_000 for i in range(16)}
    log = AuditLog(tmp_path / "store")
    log.append(event(1, args={"city": "Paris", **big}))
    log.append(event(2))
    log.close()
    assert log.stats()["append_errors"] == 0
    assert not scan_segments(tmp_path / "store" / "decisions")[1]  # all converted
    with open_store(tmp_path / "store") as con:
        rows = con.sql(
            "SELECT request_id, args, args_redacted FROM decisions ORDER BY request_id"
        ).fetchall()
    assert [r[0] for r in rows] == ["1", "2"]
    assert json.loads(rows[0][1]) == dict.fromkeys(["city", *big], TOO_BIG_MARK)
    assert sorted(rows[0][2]) == sorted(["city", *big])
    assert json.loads(rows[1][1]) == {"city": "Paris", "i": 2}
    report = verify(tmp_path / "store")
    assert report.ok, report.first


def test_a_row_under_the_limit_is_kept_as_it_is(tmp_path: Path, low_limit: None) -> None:
    args = {f"part{i:02d}": "x" * 3_000 for i in range(20)}  # 60 KB, under 64 KiB
    log = AuditLog(tmp_path / "store")
    log.append(event(1, args=args))
    log.close()
    with open_store(tmp_path / "store") as con:
        [(recorded, redacted)] = con.sql("SELECT args, args_redacted FROM decisions").fetchall()
    assert json.loads(recorded) == args and redacted == []


def test_a_row_over_the_limit_without_its_arguments_is_counted_not_written(
    tmp_path: Path, low_limit: None, caplog: pytest.LogCaptureFixture
) -> None:
    """Claims are not cut (yet): a row over the limit with its arguments as markers is
    counted as not encoded and logged, and the rest of the store stays readable."""
    crowded = dataclasses.replace(ALICE, claims={f"c{i:02d}": "x" * 4_000 for i in range(20)})
    log = AuditLog(tmp_path / "store")
    log.append(event(1, principal=crowded))
    log.append(event(2))
    log.close()
    assert log.stats()["append_errors"] == 1
    assert "over the readers' limit" in caplog.text
    with open_store(tmp_path / "store") as con:
        assert con.sql("SELECT request_id FROM decisions").fetchall() == [("2",)]
    report = verify(tmp_path / "store")
    assert report.ok, report.first
