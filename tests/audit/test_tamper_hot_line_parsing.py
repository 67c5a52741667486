"""Tampering with a hot file (`decisions/W-<seq>.jsonl`): `verify` parses each line with
Python's `json`, readers (and the converter) with DuckDB's `read_json`. Where the two
parsers disagree, `verify` checks one row and readers show another.

The store here is what a writer killed with `kill -9` leaves (its hot files stay until
`compact` converts them); the same holds for a live writer's current hot file."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from audit_kit import event

from guard.audit import AuditLog, open_store, verify


def _hot_store(tmp_path: Path, n: int = 5) -> tuple[Path, Path]:
    """A store whose `n` decisions are still in their hot file, and that file."""
    live, store = tmp_path / "live", tmp_path / "store"
    log = AuditLog(live, segment_age=3600)
    try:
        for i in range(n):
            log.append(event(i))
        assert log.flush()
        shutil.copytree(live, store)  # the files as a kill -9 would leave them
    finally:
        log.close()
    (hot,) = (store / "decisions").glob("*.jsonl")
    assert verify(store).ok
    return store, hot


def _shown(store: Path) -> list[tuple[object, ...]]:
    with open_store(store) as con:
        return con.execute(
            "SELECT request_id, user_id, allowed FROM decisions ORDER BY seq"
        ).fetchall()


def test_a_duplicate_key_does_not_show_readers_a_value_verify_did_not_check(
    tmp_path: Path,
) -> None:
    """`{"allowed":false,"user_id":"mallory", <original row>}`: Python keeps the last
    value of a repeated key (the original: the hash matches), DuckDB the first (the
    forgery): readers see a denied call by mallory, `verify` says ok."""
    store, hot = _hot_store(tmp_path)
    lines = hot.read_bytes().split(b"\n")
    lines[1] = b'{"allowed":false,"user_id":"mallory",' + lines[1][1:]
    hot.write_bytes(b"\n".join(lines))
    shown = _shown(store)
    report = verify(store)
    assert not report.ok or shown[1] == ("1", "alice", True), (
        f"verify ok, but readers show {shown[1]}"
    )


def test_a_row_verify_checked_is_not_hidden_from_readers(tmp_path: Path) -> None:
    """An extra field whose string holds a UTF-8-encoded surrogate (bytes ED A0 80):
    Python's `json.loads` decodes bytes with `surrogatepass` and ignores a field that is
    not a column, so the row verifies; DuckDB rejects the line, and `ignore_errors` drops
    it from every reader (and from the segment it is converted to)."""
    store, hot = _hot_store(tmp_path)
    lines = hot.read_bytes().split(b"\n")
    lines[1] = b'{"note":"\xed\xa0\x80",' + lines[1][1:]
    hot.write_bytes(b"\n".join(lines))
    shown = _shown(store)
    report = verify(store)
    assert not report.ok or [r[0] for r in shown] == ["0", "1", "2", "3", "4"], (
        f"verify ok ({report.rows} rows), readers show {[r[0] for r in shown]}"
    )


def test_an_unterminated_last_line_is_not_shown_unless_verified(tmp_path: Path) -> None:
    """A complete row appended without its newline: `verify` skips it as "a write in
    progress", DuckDB reads it like any other line (it has a `hash`, any `hash`), so
    readers show a forged decision nobody checked."""
    store, hot = _hot_store(tmp_path)
    data = hot.read_bytes()
    doc = json.loads(data.split(b"\n")[0])
    doc.update(request_id="FORGED", user_id="mallory", seq=999, hash="0" * 64)
    hot.write_bytes(data + json.dumps(doc).encode())  # no newline at the end
    shown = _shown(store)
    report = verify(store)
    assert not report.ok or all(r[0] != "FORGED" for r in shown), (
        f"verify ok ({report.rows} rows), readers show {shown[-1]}"
    )


def test_an_unterminated_last_line_only_duckdb_can_parse_is_not_left_unchecked(
    tmp_path: Path,
) -> None:
    """The same forged row, unterminated, with a trailing comma (`…,"hash":"0…0",}`):
    Python's `json` rejects it, so `verify` took it for a write in progress and skipped
    it; DuckDB's reader accepts trailing commas and shows it (found in review)."""
    store, hot = _hot_store(tmp_path)
    data = hot.read_bytes()
    doc = json.loads(data.split(b"\n")[0])
    doc.update(request_id="FORGED", user_id="mallory", seq=999, hash="0" * 64)
    hot.write_bytes(data + json.dumps(doc).encode()[:-1] + b",}")
    shown = _shown(store)
    report = verify(store)
    assert any(r[0] == "FORGED" for r in shown)  # what readers make of it
    assert not report.ok, f"verify ok ({report.rows} rows), readers show {shown[-1]}"
    assert report.first is not None and report.first.row == 5
