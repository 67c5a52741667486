"""A segment rewritten with `ts` / `request_time` as naive TIMESTAMP instead of
TIMESTAMPTZ: `verify` reads `epoch_us(ts)`, the same number either way, so it says ok;
readers read the column as it is, and a reader whose session is not in UTC (DuckDB's
default is the machine's zone) sees the rows of that segment shifted by its UTC offset,
`request_time` included (the clock a replay's time conditions read)."""

from __future__ import annotations

import os
from pathlib import Path

import duckdb
from audit_kit import event

from guard.audit import AuditLog, open_store, verify


def _times(store: Path) -> list[tuple[object, ...]]:
    with open_store(store) as con:
        con.con.execute("SET TimeZone = 'America/New_York'")
        return con.execute(
            "SELECT seq, epoch_us(ts), epoch_us(request_time) FROM decisions ORDER BY seq"
        ).fetchall()


def test_a_retyped_timestamp_column_is_detected(tmp_path: Path) -> None:
    store = tmp_path / "store"
    log = AuditLog(store, segment_rows=10)
    for i in range(20):
        log.append(event(i))
        if i == 9:
            log.flush()
    log.close()
    before = _times(store)
    segment = sorted((store / "decisions").glob("*.parquet"))[1]
    tmp = segment.with_name("tampered.tmp")
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    con.execute(
        f"COPY (SELECT * REPLACE (ts::TIMESTAMP AS ts, request_time::TIMESTAMP AS request_time) "
        f"FROM read_parquet('{segment}')) TO '{tmp}' (FORMAT parquet)"
    )
    con.close()
    os.replace(tmp, segment)
    after = _times(store)
    report = verify(store)
    moved = [(a[0], (a[1] - b[1]) / 3.6e9) for a, b in zip(after, before, strict=True) if a != b]
    assert not report.ok or not moved, f"verify ok; rows moved (seq, hours): {moved[:3]}..."
