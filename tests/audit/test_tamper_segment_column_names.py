"""A segment rewritten with an extra column named `filename` or `file_row_number`: readers
read it as ever (one more column), but `verify` reads segments with DuckDB's `filename`
and `file_row_number` options, which refuse a file that has such a column: `verify`
raised a Binder Error and checked nothing, and its CLI said only "UNREADABLE", naming
no file (found in review). The segment is now reported by name, and every other row is
still checked."""

from __future__ import annotations

import os
from pathlib import Path

import duckdb
import pytest
from audit_kit import event
from click.testing import CliRunner

from guard.audit import AuditLog, open_store, verify
from guard.cli import main


def _rewrite(segment: Path, select: str) -> None:
    """Replace `segment` by `select` over its rows (`{t}`), as an attacker would."""
    tmp = segment.with_name("tampered.tmp")
    rows = select.format(t=f"read_parquet('{segment}')")
    con = duckdb.connect()
    con.execute(f"COPY ({rows}) TO '{tmp}' (FORMAT parquet)")
    con.close()
    os.replace(tmp, segment)


@pytest.mark.parametrize("column", ["filename", "file_row_number"])
def test_a_column_named_like_verifys_own_is_reported(tmp_path: Path, column: str) -> None:
    store = tmp_path / "store"
    log = AuditLog(store, segment_rows=10)
    for i in range(30):
        log.append(event(i))
        if i % 10 == 9:
            log.flush()
    log.close()
    first, second, third = sorted((store / "decisions").glob("*.parquet"))
    _rewrite(second, f"SELECT *, 1 AS {column} FROM {{t}}")
    with open_store(store) as reader:  # readers still read every row
        assert reader.execute("SELECT count(*) FROM decisions").fetchone() == (30,)

    report = verify(store)
    assert not report.ok
    assert any(p.file == str(second) and column in p.message for p in report.problems)
    # the other segments were checked: one of their rows edited is found too
    _rewrite(third, "SELECT * REPLACE ('mallory' AS user_id) FROM {t}")
    assert any(p.file == str(third) and p.seq == 21 for p in verify(store).problems)

    result = CliRunner().invoke(main, ["verify", str(store), "--all"])
    assert result.exit_code == 1 and second.name in result.output
    assert first.name not in result.output
