"""Files `verify` and readers trust, rewritten into JSON of another shape: a writer's head
(`writers/W.json`), a retention anchor (`anchors/T-W.json`), a compaction marker
(`T/M.parquet.replaces`). Their writers replace them atomically, so no crash leaves them
so: they were edited. `verify` must say so (exit 1, naming the file), not die with a
`KeyError` traceback; readers must keep reading."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from audit_kit import event
from click.testing import CliRunner

from guard.audit import AuditLog, compact, open_store, verify
from guard.cli import main


@pytest.fixture
def store(tmp_path: Path) -> Path:
    """20 decisions of one writer in two segments."""
    path = tmp_path / "store"
    log = AuditLog(path, segment_rows=10)
    for i in range(20):
        log.append(event(i))
        if i == 9:
            log.flush()
    log.close()
    assert verify(path).ok
    return path


def _writer(store: Path) -> str:
    (head,) = (store / "writers").glob("*.json")
    return head.stem


def _refused(store: Path, file: Path) -> None:
    report = verify(store)
    assert not report.ok and any(p.file == str(file) for p in report.problems), report.problems
    result = CliRunner().invoke(main, ["verify", str(store)])
    assert result.exit_code == 1 and not isinstance(result.exception, LookupError | TypeError)
    assert "TAMPERED" in result.output, result.output


@pytest.mark.parametrize(
    "doc", [{"decisions": {}}, {"decisions": 20}, {"decisions": {"seq": "20"}}, [20]]
)
def test_a_malformed_head_is_reported(store: Path, doc: object) -> None:
    head = store / "writers" / f"{_writer(store)}.json"
    head.write_text(json.dumps(doc))
    _refused(store, head)


@pytest.mark.parametrize("doc", [{"first_seq": 11}, {"prev_hash": "0" * 64}, {"first_seq": "x"}])
def test_a_malformed_anchor_is_reported(store: Path, doc: object) -> None:
    anchor = store / "anchors" / f"decisions-{_writer(store)}.json"
    anchor.write_text(json.dumps(doc))
    _refused(store, anchor)


def test_a_malformed_marker_is_ignored_by_readers_and_verify(store: Path) -> None:
    second = sorted((store / "decisions").glob("*.parquet"))[1]
    (store / "decisions" / f"{second.name}.replaces").write_text('{"sources": 5}')
    with open_store(store) as db:
        assert db.sql("SELECT count(*) FROM decisions").fetchall() == [(20,)]
    assert verify(store).ok


def test_a_marker_naming_files_outside_its_directory_deletes_nothing_there(
    store: Path,
) -> None:
    """A marker's sources are names in its directory. Given a path instead (absolute, or
    `../..`), `compact` deleted that file, wherever it was, once the grace period was
    over: whoever can write the store could have a cron job's `compact` delete any file
    it may (found in review)."""
    outside = [store.parent / "kept.parquet", store.parent / "kept-too.jsonl"]
    for path in outside:
        path.write_text("not the store's")
    second = sorted((store / "decisions").glob("*.parquet"))[1]
    (store / "decisions" / f"{second.name}.replaces").write_text(
        json.dumps({"sources": [str(outside[0]), "../../kept-too.parquet"], "replaced_at": 0})
    )
    compact(store, grace=0)
    assert [p.exists() for p in outside] == [True, True]
    assert verify(store).ok


def test_a_seq_of_another_type_is_reported(store: Path, tmp_path: Path) -> None:
    """`seq` rewritten as text, in a segment (VARCHAR) or a hot line (`"seq":"2"`):
    readers cast it back and show the row; verify compared it with numbers and died
    with TypeError (found in review)."""
    import os
    import shutil

    import duckdb

    segment = sorted((store / "decisions").glob("*.parquet"))[1]
    tmp = segment.with_name("tampered.tmp")
    con = duckdb.connect()
    con.execute(
        f"COPY (SELECT * REPLACE (CAST(seq AS VARCHAR) AS seq) FROM read_parquet('{segment}'))"
        f" TO '{tmp}' (FORMAT parquet)"
    )
    con.close()
    os.replace(tmp, segment)
    _refused(store, segment)

    live, killed = tmp_path / "live", tmp_path / "killed"
    log = AuditLog(live, segment_age=3600)
    try:
        for i in range(3):
            log.append(event(i))
        assert log.flush()
        shutil.copytree(live, killed)  # the hot file as a kill -9 leaves it
    finally:
        log.close()
    (hot,) = (killed / "decisions").glob("*.jsonl")
    hot.write_bytes(hot.read_bytes().replace(b'"seq":2,', b'"seq":"2",'))
    with open_store(killed) as db:
        assert db.sql("SELECT count(*) FROM decisions").fetchall() == [(3,)]
    _refused(killed, hot)
