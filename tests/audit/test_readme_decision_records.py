"""The README's decision-record sections, claim by claim, against real files (and, for
the commands, a real `mcp-guard` process)."""

from __future__ import annotations

from pathlib import Path

import duckdb
from audit_kit import event

from guard.audit import AuditLog, open_store


def _segment_rows(store: Path, table: str = "decisions") -> list[int]:
    files = sorted((store / table).glob("*.parquet"))
    con = duckdb.connect()
    try:
        return [con.execute("SELECT count(*) FROM read_parquet(?)", [str(f)]).fetchone()[0]
                for f in files]  # fmt: skip
    finally:
        con.close()


def test_a_segment_holds_at_most_segment_rows(tmp_path: Path) -> None:
    """ "`<writer>-<first seq>.parquet` the same rows, converted (≤ 25,000)": a hot file was
    converted once a write took it to 25,000 rows or more, so flushes of 3,000 rows made a
    segment of 27,000. It is now sealed before a write that would take it past the limit."""
    store = tmp_path / "s"
    log = AuditLog(store, flush_interval=3600, segment_rows=250)
    for _ in range(9):  # 9 flushes of 30 rows: 270 rows
        for i in range(30):
            log.append(event(i))
        log.flush()
    log.close()
    rows = _segment_rows(store)
    assert sum(rows) == 270 and max(rows) <= 250, rows


def test_rows_loaded_back_from_the_spill_file_make_segments_of_at_most_segment_rows(
    tmp_path: Path,
) -> None:
    """Rows spilled while the store refused writes were loaded back in one write, into one
    hot file (and segment) however many there were."""
    store = tmp_path / "s"
    failing = [True]

    def hook(table: str, rows: int) -> None:
        if failing[0]:
            raise OSError(28, "No space left on device")

    log = AuditLog(store, flush_interval=3600, segment_rows=100, write_hook=hook)
    for i in range(350):
        log.append(event(i))
    log.flush()
    assert log.stats()["spill_pending"] == 350
    failing[0] = False
    log.flush()
    log.close()
    rows = _segment_rows(store)
    assert sum(rows) == 350 and max(rows) <= 100, rows


def test_integers_of_more_than_3600_digits_are_recorded_as_oversized(tmp_path: Path) -> None:
    """ "integers of more than 3,600 digits ... become `<redacted:oversized bits=N>`": the
    bound was 2**12000, so integers of 3,601 to 3,612 digits were recorded whole."""
    store = tmp_path / "s"
    log = AuditLog(store)
    log.append(event(args={"kept": 10**3600 - 1, "cut": 10**3600, "neg": -(10**3600)}))
    log.close()
    with open_store(store) as con:
        args, redacted = con.execute("SELECT args, args_redacted FROM decisions").fetchone()
    assert sorted(redacted) == ["cut", "neg"]
    bits = (10**3600).bit_length()
    assert f'"cut":"<redacted:oversized bits={bits}>"' in args
    assert f'"kept":{"9" * 3600}' in args


def test_files_lists_what_a_query_reads_while_a_writer_is_running(tmp_path: Path) -> None:
    """ "`store.files("decisions")` lists the segments a query reads": while a server runs,
    its rows are read from its hot file, and `files` listed only Parquet segments: none,
    for a store whose rows a query did show."""
    store = tmp_path / "s"
    log = AuditLog(store, flush_interval=3600)
    log.append(event(1))
    log.flush()
    with open_store(store) as con:
        assert con.execute("SELECT count(*) FROM decisions").fetchone() == (1,)
        [hot] = con.files("decisions")
        assert hot.suffix == ".jsonl" and hot.parent == store / "decisions"
        log.close()  # converted: the segment, and no longer the hot file beside it
        [segment] = con.files("decisions")
        assert segment == hot.with_suffix(".parquet")
