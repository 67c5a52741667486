"""A store path is a path, whatever characters it holds: readers, `verify`, `compact` and
retention read that store's files and no others. Found in review: the file lists handed
to DuckDB were quoted as SQL strings but not as file names, and DuckDB reads a name with
`*`, `?` or `[` as a glob (`records[a]` read the files of `recordsa` instead of its own,
`records*` those of every store whose name starts so), a relative name starting with `~`
from the home directory, and a name with a backslash as two directories."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import duckdb
import pytest
from audit_kit import event

from guard.audit import AuditLog, apply_retention, compact, open_store, verify
from guard.audit.segments import scan_segments
from guard.errors import AuditError

ODD_NAMES = [
    "records[a]", "records*", "records?", "rec[*]ords", "it's \"mine\" 100%", "new\nline",
    "back\\slash", "ünï ✓", "-dash", "~tilde", "~",
]  # fmt: skip


def _write(store: str | Path, rows: int) -> None:
    log = AuditLog(store, flush_interval=3600)
    for i in range(rows):
        log.append(event(i))
    log.close()


def _count(store: str | Path) -> int:
    with open_store(store) as s:
        return int(s.sql("SELECT count(*) FROM decisions").fetchall()[0][0])


@pytest.mark.parametrize("name", ODD_NAMES)
def test_a_store_with_any_name_reads_its_own_rows(tmp_path: Path, name: str) -> None:
    # a look-alike beside it, as a backup copy would be: same file names, one row kept
    _write(name, 3)
    for decoy in ("recordsa", "records-copy", "recordsX", "rec*ords"):
        shutil.copytree(name, decoy)
        for seg in Path(decoy, "decisions").glob("*.parquet"):
            shutil.copy(seg, "plain.parquet")  # (a name DuckDB takes as it is)
            duckdb.sql("COPY (FROM 'plain.parquet' LIMIT 1) TO 'one.parquet' (FORMAT parquet)")
            os.replace("one.parquet", seg)
    assert _count(name) == 3
    report = verify(name)
    assert report.ok and report.rows == 3, report.problems
    compact(name, grace=0)
    assert Path(name, "decisions").is_dir() and _count(name) == 3
    assert verify(name).ok
    assert apply_retention(name, days=1)["decisions"] == 0
    assert _count(name) == 3
    if not name.startswith("~"):  # (a relative `~` name is not the home directory here)
        assert _count(tmp_path / name) == 3


def test_hot_rows_of_an_odd_store_are_read_and_converted(tmp_path: Path) -> None:
    log = AuditLog("records[a]", flush_interval=3600)
    try:
        log.append(event(0))
        log.flush()
        shutil.copytree("records[a]", "recordsa")  # the same hot file, emptied
        for hot in Path("recordsa", "decisions").glob("*.jsonl"):
            hot.write_text("")
        assert _count("records[a]") == 1
        assert verify("records[a]").ok
    finally:
        log.close()
    segments, hot = scan_segments(Path("records[a]", "decisions"))  # (hot files stay a while)
    assert segments and hot == []


def test_a_store_path_duckdb_cannot_name_is_refused(tmp_path: Path) -> None:
    # DuckDB splits a glob at a backslash too, so no escaping keeps `\` and `*` literal
    with pytest.raises(ValueError, match="backslash"):
        AuditLog(tmp_path / "a\\*b")
    _write("s", 1)
    shutil.copytree("s", "x\\[1]")
    with pytest.raises(AuditError, match="backslash"):
        _count("x\\[1]")
