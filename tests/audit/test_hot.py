"""Hot files: a writer's newest rows, appended once per flush, read as they grow, then
converted to a Parquet segment. Real files, real DuckDB."""

from __future__ import annotations

import errno
import json
import os
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from audit_kit import append_calls, event

from guard.audit import AuditLog, compact, open_store, verify
from guard.audit import writer as writer_module
from guard.audit.segments import scan_segments


def _files(store: Path, table: str = "decisions") -> tuple[list[Path], list[Path]]:
    names = sorted((store / table).iterdir())
    return [p for p in names if p.suffix == ".parquet"], [p for p in names if p.suffix == ".jsonl"]


def _count(store: Path) -> int:
    with open_store(store) as con:
        return int(con.execute("SELECT count(*) FROM decision_log").fetchone()[0])


def _fill(store: Path, n: int) -> AuditLog:
    log = AuditLog(store, flush_interval=3600)
    append_calls(log, 0, n)
    log.flush()
    return log


def test_flushed_rows_are_read_from_the_hot_file_then_from_one_segment(tmp_path: Path) -> None:
    store = tmp_path / "s"
    log = _fill(store, 40)
    for more in range(3):  # three more flushes: appended to the same file
        log.append(event(100 + more))
        log.flush()
    segments, hot = _files(store)
    assert segments == [] and len(hot) == 1
    assert len(hot[0].read_bytes().splitlines()) == 43
    assert _count(store) == 43 and verify(store).ok
    log.close()
    segments, hot = scan_segments(store / "decisions")  # (the hot file stays a while, skipped)
    assert len(segments) == 1 and hot == []
    assert segments[0].stem == hot_stem(log)
    assert _count(store) == 43 and verify(store).rows == 83


def hot_stem(log: AuditLog) -> str:
    return f"{log.writer_id}-{1:012d}"


def test_a_hot_file_becomes_a_segment_when_full_or_old(tmp_path: Path) -> None:
    """(Counted as readers see them: a converted hot file stays beside its segment for
    `CONVERTED_GRACE_SECONDS`, skipped, for relations that listed it before.)"""
    store = tmp_path / "s"
    log = AuditLog(store, flush_interval=3600, segment_rows=25)
    for i in range(60):  # 25 + 25 rows convert; 10 stay hot
        log.append(event(i))
        if i % 5 == 4:
            log.flush()
    deadline = time.monotonic() + 10
    while len(scan_segments(store / "decisions")[0]) < 2 and time.monotonic() < deadline:
        log.flush()
        time.sleep(0.02)
    segments, hot = scan_segments(store / "decisions")
    assert [p.name[-20:] for p in segments] == ["000000000001.parquet", "000000000026.parquet"]
    assert len(hot) == 1 and hot[0].name.endswith("000000000051.jsonl")
    log._writer.hot_age = 0.0  # as if 30 s had passed
    log.flush()
    while len(scan_segments(store / "decisions")[0]) < 3 and time.monotonic() < deadline:
        log.flush()
        time.sleep(0.02)
    segments, hot = scan_segments(store / "decisions")
    assert len(segments) == 3 and hot == []
    assert _count(store) == 60 and log.stats()["segments"] == 3
    assert len(_files(store)[1]) == 3  # converted ones stay a while, beside their segments
    log.close()
    assert len(_files(store)[1]) == 3  # ... after their writer closed too
    assert scan_segments(store / "decisions")[1] == []
    assert verify(store).ok


def test_a_torn_last_line_is_skipped_and_a_dead_writers_file_converted(tmp_path: Path) -> None:
    """A writer killed mid-write leaves an incomplete last line: readers and `verify` skip
    it (it was never acknowledged); `compact` converts the orphaned file without it."""
    store = tmp_path / "s"
    log = _fill(store, 30)
    for open_file in log._writer._hot.values():  # the writer "dies": it never writes again
        os.close(open_file.fd)
    log._writer._hot.clear()
    hot = _files(store)[1][0]
    with open(hot, "ab") as fh:
        fh.write(b'{"decision_id":"torn","ts":1')  # no newline: a write cut short
    assert _count(store) == 30
    report = verify(store)
    assert report.ok and report.rows == 60
    compact(store, orphan_age=0)  # a live writer's file would be left alone by default
    segments, hot_files = _files(store)
    assert len(segments) == 1 and hot_files == [hot]  # beside it for the grace, skipped
    assert _count(store) == 30 and verify(store).ok
    compact(store, orphan_age=0, grace=0)
    assert _files(store) == (segments, [])
    assert _count(store) == 30 and verify(store).ok
    log.close()  # (its thread: it holds no file any more)


def test_compact_leaves_a_live_writers_hot_file_alone(tmp_path: Path) -> None:
    store = tmp_path / "s"
    log = _fill(store, 10)
    compact(store)
    assert len(_files(store)[1]) == 1
    log.append(event(99))
    log.close()
    assert _count(store) == 11 and verify(store).ok


def _lines(path: Path) -> list[bytes]:
    return path.read_bytes().splitlines(keepends=True)


def test_tampering_with_a_hot_file_is_named(tmp_path: Path) -> None:
    store = tmp_path / "s"
    log = _fill(store, 10)  # left open: its rows stay in the hot file
    hot = _files(store)[1][0]
    lines = _lines(hot)
    original = b"".join(lines)
    # an edited row
    row = json.loads(lines[3])
    row["allowed"] = not row["allowed"]
    hot.write_bytes(b"".join([*lines[:3], json.dumps(row).encode() + b"\n", *lines[4:]]))
    first = verify(store).first
    assert first is not None and first.seq == 4 and "edited" in first.message
    assert first.file == str(hot) and first.row == 3
    # a line that is no row at all
    hot.write_bytes(b"".join([*lines[:5], b"garbage\n", *lines[5:]]))
    problems = verify(store).problems
    assert any(p.message == "unreadable row" and p.row == 5 for p in problems)
    # two rows swapped
    hot.write_bytes(b"".join([*lines[:6], lines[7], lines[6], *lines[8:]]))
    messages = [p.message for p in verify(store).problems]
    assert any("out of order" in m for m in messages)
    # a deleted row
    hot.write_bytes(b"".join([*lines[:2], *lines[3:]]))
    assert "missing" in str(verify(store).first)
    hot.write_bytes(original)
    assert verify(store).ok
    log.close()


def test_a_write_cut_short_is_taken_back_and_its_rows_spilled(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The disk fills up in the middle of a write: what got written is cut off the hot file
    again (no half batch for readers), the batch goes to the spill file, and comes back in
    the chain once writes work again."""
    store = tmp_path / "s"
    log = _fill(store, 5)
    real_write = os.write
    failing = {"on": True}

    def half_then_full(fd: int, data: Any) -> int:
        if failing["on"] and len(data) > 100:
            real_write(fd, bytes(data[: len(data) // 2]))
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_write(fd, data)

    monkeypatch.setattr(writer_module.os, "write", half_then_full)
    for i in range(10):
        log.append(event(100 + i))
    log.flush()
    hot = _files(store)[1][0]
    assert len(hot.read_bytes().splitlines()) == 5 and hot.read_bytes().endswith(b"\n")
    assert log.stats()["spilled"] == 10 and _count(store) == 5
    failing["on"] = False
    log.flush()
    deadline = time.monotonic() + 10
    while log.stats()["spill_pending"] and time.monotonic() < deadline:
        log.flush()
        time.sleep(0.05)
    log.close()
    assert _count(store) == 15
    report = verify(store)
    assert report.ok and report.rows == 20  # 15 decisions, 5 outcomes


def test_a_failed_conversion_keeps_the_rows_readable_and_is_retried(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = tmp_path / "s"
    log = AuditLog(store, flush_interval=3600, segment_rows=10)
    real_convert = writer_module.convert_hot
    calls = []

    def broken_once(*args: Any, **kwargs: Any) -> Path:
        calls.append(args)
        if len(calls) == 1:
            raise OSError("disk hiccup")
        return real_convert(*args, **kwargs)

    monkeypatch.setattr(writer_module, "convert_hot", broken_once)
    for i in range(10):
        log.append(event(i))
    log.flush()  # 10 rows: the hot file is sealed, and its conversion fails
    deadline = time.monotonic() + 10
    while not log.stats()["convert_failures"] and time.monotonic() < deadline:
        time.sleep(0.02)
    assert log.stats()["convert_failures"] == 1
    assert _count(store) == 10 and len(_files(store)[1]) == 1  # still there, still read
    log.close()  # retried
    assert scan_segments(store / "decisions")[1] == [] and len(_files(store)[0]) == 1
    assert _count(store) == 10 and verify(store).ok


def test_a_hot_file_left_beside_its_segment_is_never_counted_and_goes(tmp_path: Path) -> None:
    """A writer killed between writing a segment and deleting its hot file leaves both."""
    store = tmp_path / "s"
    log = _fill(store, 10)
    hot = _files(store)[1][0]
    lines = hot.read_bytes()
    log.close()
    hot.write_bytes(lines)  # back, beside its segment
    assert _count(store) == 10 and verify(store).ok
    compact(store, orphan_age=0)  # its segment is new: a relation may still read it
    assert hot.exists() and _count(store) == 10
    compact(store, orphan_age=0, grace=0)
    assert not hot.exists() and _count(store) == 10


def test_compact_leaves_a_sealed_hot_file_to_its_live_writer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A sealed hot file waiting for its writer's converter is not a dead writer's, however
    old: `compact` must leave it (found in review: both converted it, and when compaction
    merged its segment away before the writer's conversion landed, every row counted
    twice)."""
    store = tmp_path / "s"
    log = AuditLog(store, flush_interval=3600, segment_rows=10)
    go = threading.Event()
    real_convert = writer_module.convert_hot

    def held_up(*args: Any, **kwargs: Any) -> Path:
        go.wait(30)
        return real_convert(*args, **kwargs)

    monkeypatch.setattr(writer_module, "convert_hot", held_up)
    for i in range(10):
        log.append(event(i))
    log.flush()  # 10 rows: the hot file is sealed; its conversion waits
    (hot,) = _files(store)[1]
    compact(store, orphan_age=0, grace=0)
    assert hot.exists() and _files(store)[0] == []  # still its writer's
    go.set()
    log.close()
    assert scan_segments(store / "decisions")[1] == [] and len(_files(store)[0]) == 1
    compact(store, grace=0)
    assert _count(store) == 10 and verify(store).ok


def test_a_writer_lets_go_of_a_hot_file_compact_converted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A conversion that keeps failing (here: at once) leaves the hot file to `compact`
    (which takes it after 10 minutes untouched); the writer must then go on with its next
    files, not retry forever."""
    monkeypatch.setattr(writer_module, "HANDOVER_SECONDS", 0.0)
    store = tmp_path / "s"
    log = AuditLog(store, flush_interval=3600, segment_rows=10)
    real_convert = writer_module.convert_hot
    broken = {"on": True}

    def maybe_broken(*args: Any, **kwargs: Any) -> Path:
        if broken["on"]:
            raise OSError("disk hiccup")
        return real_convert(*args, **kwargs)

    monkeypatch.setattr(writer_module, "convert_hot", maybe_broken)
    for i in range(10):
        log.append(event(i))
    log.flush()  # sealed; its conversion fails
    deadline = time.monotonic() + 10
    while not log.stats()["convert_failures"] and time.monotonic() < deadline:
        time.sleep(0.02)
    compact(store, orphan_age=0, grace=0)
    broken["on"] = False
    for i in range(10, 20):  # the next file converts
        log.append(event(i))
    log.close()
    assert scan_segments(store / "decisions")[1] == [] and len(_files(store)[0]) == 2
    assert _count(store) == 20 and verify(store).ok


def test_every_query_alias_of_the_reader_sees_fresh_files(tmp_path: Path) -> None:
    """DuckDB's `query`, `from_query` and `view` are `sql` and `table` under other names:
    they list the files again too (found in review: `query` saw stale views, and raised
    once a compaction had removed the files it knew)."""
    store = tmp_path / "s"
    reader = open_store(store)  # a dashboard may start before the first server
    log = AuditLog(store, segment_rows=5)
    append_calls(log, 0, 5)
    log.close()
    for ask in (reader.query, reader.from_query, reader.sql):
        assert ask("SELECT count(*) FROM decisions").fetchall() == [(5,)]
    assert reader.view("decisions").count("*").fetchall() == [(5,)]
    log = AuditLog(store, segment_rows=5)
    append_calls(log, 5, 5)
    log.close()
    compact(store, grace=0)  # the files the views were made of are gone
    assert reader.query("SELECT count(*) FROM decisions").fetchall() == [(10,)]
    reader.close()
