"""Tampering: edit, delete, reorder, insert, truncate rows; `verify` names the first bad row."""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

import duckdb
import pytest
from audit_kit import event, inline_listings
from click.testing import CliRunner

from guard.audit import AuditLog, open_store, verify
from guard.cli import main


@pytest.fixture
def store(tmp_path: Path) -> Path:
    """20 decisions of one writer in two segments (seq 1-10 and 11-20), 10 outcomes; no
    hot file left beside them (as once their grace is over)."""
    path = tmp_path / "store"
    log = AuditLog(path, segment_rows=10)
    log._writer.converted_grace = 0.0
    for i in range(20):
        ev = event(i)
        log.append(ev)
        if i < 10:
            log.append_outcome(ev.decision_id, "ok", 5.0, None)
        if i == 9:
            log.flush()
    log.close()
    assert verify(path).ok
    return path


def _segments(store: Path, table: str = "decisions") -> list[Path]:
    return sorted((store / table).glob("*.parquet"))


def _rewrite(segment: Path, select: str) -> None:
    """Replace `segment` by `select` over its rows (`{t}` names them), as an attacker would."""
    tmp = segment.with_name("tampered.tmp")
    con = duckdb.connect()
    query = select.format(t=f"read_parquet('{segment}')")
    con.execute(f"COPY ({query}) TO '{tmp}' (FORMAT parquet)")
    con.close()
    os.replace(tmp, segment)


def _set(segment: Path, seq: int, column: str, value: str) -> None:
    """Edit one column of the row with this seq."""
    _rewrite(
        segment,
        f"SELECT * REPLACE (CASE WHEN seq = {seq} THEN {value} ELSE {column} END AS {column}) "
        "FROM {t}",
    )


def test_an_untouched_store_verifies(store: Path) -> None:
    report = verify(store)
    assert report.ok and report.rows == 30 and report.chains == 2


def test_edited_row(store: Path) -> None:
    _set(_segments(store)[0], 5, "user_id", "'mallory'")
    first = verify(store).first
    assert first is not None and (first.table, first.seq) == ("decisions", 5)
    assert "edited" in first.message and first.decision_id and first.row == 4


def test_edited_decision_flipped_to_allow(store: Path) -> None:
    _set(_segments(store)[1], 15, "allowed", "NOT allowed")
    first = verify(store).first
    assert first is not None and first.seq == 15


def test_deleted_row(store: Path) -> None:
    _rewrite(_segments(store)[0], "SELECT * FROM {t} WHERE seq <> 5")
    first = verify(store).first
    assert first is not None and first.seq == 6 and "rows 5..5 missing" in first.message


def test_reordered_rows(store: Path) -> None:
    swapped = "CASE seq WHEN 3 THEN 4 WHEN 4 THEN 3 ELSE seq END"
    _rewrite(_segments(store)[0], f"SELECT * FROM {{t}} ORDER BY {swapped}")
    report = verify(store)
    assert not report.ok
    assert any(p.seq == 3 and "out of order" in p.message for p in report.problems)


def test_swapped_contents_with_renumbered_seq(store: Path) -> None:
    # the attacker also swaps seq values so the file looks ordered: the chain breaks
    _rewrite(_segments(store)[0],
             "SELECT * REPLACE (CASE seq WHEN 3 THEN 4 WHEN 4 THEN 3 ELSE seq END AS seq) FROM {t} "
             "ORDER BY CASE seq WHEN 3 THEN 4 WHEN 4 THEN 3 ELSE seq END")  # fmt: skip
    first = verify(store).first
    assert first is not None and first.seq == 3 and "reordered" in first.message


def test_inserted_row(store: Path) -> None:
    _rewrite(_segments(store)[0],
             "SELECT * FROM {t} UNION ALL SELECT * REPLACE ('forged' AS user_id) FROM {t} "
             "WHERE seq = 7 ORDER BY seq")  # fmt: skip
    report = verify(store)
    assert any(p.seq == 7 and "duplicate" in p.message for p in report.problems)


def test_truncated_chain(store: Path) -> None:
    _rewrite(_segments(store)[1], "SELECT * FROM {t} WHERE seq < 19")
    first = verify(store).first
    assert first is not None and first.seq == 19 and "truncated" in first.message


def test_deleted_segment(store: Path) -> None:
    _segments(store)[1].unlink()
    first = verify(store).first
    assert first is not None and "truncated" in first.message and "11..20" in first.message
    _segments(store)[0].unlink()
    assert "missing" in str(verify(store).first)


def test_tampered_outcome(store: Path) -> None:
    _set(_segments(store, "outcomes")[0], 2, "status", "'error'")
    first = verify(store).first
    assert first is not None and (first.table, first.seq) == ("outcomes", 2)


def test_cli_verify_names_the_first_bad_row(store: Path) -> None:
    runner = CliRunner()
    ok = runner.invoke(main, ["verify", str(store)])
    assert ok.exit_code == 0 and "30 rows in 2 chains" in ok.output
    _set(_segments(store)[0], 8, "reason", "'x'")
    bad = runner.invoke(main, ["verify", str(store)])
    assert bad.exit_code == 1
    assert "seq 8" in bad.output and "edited" in bad.output
    missing = runner.invoke(main, ["verify", str(store / "nope")])
    assert missing.exit_code == 1 and "no MCP Guard store" in missing.output
    # a directory that is no store is not "ok: 0 rows", and maintenance leaves no lock in it
    other = store.parent / "not-a-store"
    (other / "docs").mkdir(parents=True)
    for command in ("verify", "compact", "retention", "tail"):
        result = runner.invoke(main, [command, str(other)])
        assert result.exit_code == 1 and "no MCP Guard store" in result.output, command
    assert sorted(p.name for p in other.iterdir()) == ["docs"]


def _hidden_listings(log: AuditLog) -> None:
    """Three listings of the same four hidden tools, closed."""
    hidden = replace(event(0).decision, allowed=False, reason="default", rule=None)
    for n in range(3):
        events = [
            replace(
                event(i, method="tools/list", action="list", args={}),
                decision=hidden,
                decision_id=f"L{n}.{i + 1}",  # numbered as the middleware numbers them
            )
            for i in range(4)
        ]
        log.append_listing(f"L{n}", events)
    log.close()


def test_listing_item_flipped_to_shown(tmp_path: Path) -> None:
    """A listing is one row for all its components: editing any one of them (here, making
    a hidden tool look shown) breaks that row's hash."""
    path = tmp_path / "store"
    _hidden_listings(inline_listings(AuditLog(path)))
    assert verify(path).ok
    segment = _segments(path, "listings")[0]
    _rewrite(
        segment,
        "SELECT * REPLACE (CASE WHEN seq = 2 THEN list_transform(items, lambda x: "
        "struct_update(x, allowed := true)) ELSE items END AS items) FROM {t}",
    )
    first = verify(path).first
    assert first is not None and (first.table, first.seq) == ("listings", 2)
    assert "edited" in first.message and first.decision_id == "L1"


def test_item_set_flipped_to_shown_or_deleted(tmp_path: Path) -> None:
    """Listings of the same items name one item set: editing it (a hidden tool made to
    look shown) or deleting it is found, and every listing naming it is named."""
    path = tmp_path / "store"
    _hidden_listings(AuditLog(path))
    (itemset,) = (path / "itemsets").glob("*.jsonl")
    with open_store(path) as db:  # the three listings read back from the one set
        assert db.sql("SELECT count(*), bool_or(allowed) FROM decisions").fetchall() == [
            (12, False)
        ]
    assert verify(path).ok
    itemset.write_bytes(itemset.read_bytes().replace(b'"allowed":false', b'"allowed":true', 1))
    report = verify(path)
    assert [(p.table, p.seq) for p in report.problems] == [
        ("itemsets", None), ("listings", 1), ("listings", 2), ("listings", 3)
    ]  # fmt: skip
    assert "does not hash to its name" in report.problems[0].message
    assert report.problems[0].file == str(itemset)
    itemset.unlink()
    report = verify(path)
    assert [(p.table, p.decision_id) for p in report.problems] == [
        ("listings", "L0"), ("listings", "L1"), ("listings", "L2")
    ]  # fmt: skip
    assert all("items are lost" in p.message for p in report.problems)


def test_a_store_being_written_verifies(tmp_path: Path) -> None:
    """`verify` while a writer writes: its head file moves on while rows are read, which
    must not read as truncation (found in review: it failed within half a second)."""
    import threading
    import time

    from audit_kit import append_calls

    log = AuditLog(tmp_path / "s", flush_interval=0.005)
    stop = threading.Event()

    def write() -> None:
        n = 0
        while not stop.is_set():
            append_calls(log, n, 20)
            n += 20
            time.sleep(0.002)

    writer = threading.Thread(target=write)
    writer.start()
    problems: list[str] = []
    try:
        time.sleep(0.2)
        deadline = time.monotonic() + 5
        while not problems and time.monotonic() < deadline:
            problems += [str(p) for p in verify(tmp_path / "s").problems]
    finally:
        stop.set()
        writer.join()
        log.close()
    assert problems == []
    assert verify(tmp_path / "s").ok


def _retained(tmp_path: Path) -> tuple[Path, Path]:
    """A store whose chain starts at seq 61 after retention (one segment left)."""
    from datetime import timedelta

    from audit_kit import append_calls

    from guard.audit import apply_retention, compact, open_store

    store = tmp_path / "s"
    log = AuditLog(store, segment_rows=25)
    for f in range(4):
        append_calls(log, f * 25, 25)
        log.flush()
    log.close()
    with open_store(store) as con:
        ts = [t for (t,) in con.execute("SELECT ts FROM decisions ORDER BY seq").fetchall()]
    apply_retention(store, days=180, now=ts[60] + timedelta(days=180))
    compact(store, grace=0)
    assert verify(store).ok
    (segment,) = _segments(store)
    return store, segment


def test_a_row_forged_before_the_retention_cut(tmp_path: Path) -> None:
    """Rows numbered below the cut were skipped unchecked (found in review)."""
    store, segment = _retained(tmp_path)
    _rewrite(
        segment,
        f"SELECT * FROM read_parquet('{segment}') UNION ALL SELECT * REPLACE ("
        "'mallory' AS user_id, 3 AS seq, 'forged' AS decision_id, repeat('0', 64) AS hash) "
        f"FROM read_parquet('{segment}') WHERE seq = 70 ORDER BY seq",
    )
    report = verify(store)
    assert not report.ok and report.first is not None and report.first.seq == 3


def test_rows_an_interrupted_retention_left_still_verify(tmp_path: Path) -> None:
    """Retention writes its anchor, then replaces segments: killed in between, the old
    rows stay, still leading to the cut; that is not tampering. One of them edited is."""
    store = tmp_path / "s"
    log = AuditLog(store)
    for i in range(30):
        log.append(event(i))
    log.close()
    con = duckdb.connect()
    (segment,) = _segments(store)
    wid, prev = con.execute(
        f"SELECT writer_id, hash FROM read_parquet('{segment}') WHERE seq = 20"
    ).fetchone()
    con.close()
    (store / "anchors").mkdir(exist_ok=True)
    (store / "anchors" / f"decisions-{wid}.json").write_text(
        f'{{"first_seq": 21, "prev_hash": "{prev}"}}'
    )
    assert verify(store).ok
    _set(segment, 7, "user_id", "'mallory'")
    report = verify(store)
    assert not report.ok and report.first is not None and report.first.seq == 7


def test_a_listing_naming_a_set_filed_while_verify_runs_verifies(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A writer files a new item set, and a listing naming it, after `verify` listed the
    sets but before it read the listings (a live store): that listing's set is there, not
    lost (found in review: it read as "missing or edited")."""
    import sys

    verify_module = sys.modules["guard.audit.verify"]  # (the package exports the function)
    path = tmp_path / "store"
    log = AuditLog(path, flush_interval=0.005)
    hidden = replace(event(0).decision, allowed=False, reason="default", rule=None)
    listed = verify_module._check_itemsets

    def then_a_listing_is_written(root: Path, report: object) -> object:
        sets = listed(root, report)
        events = [
            replace(event(i, method="tools/list", action="list", args={}), decision=hidden,
                    decision_id=f"L.{i + 1}")
            for i in range(3)
        ]  # fmt: skip
        log.append_listing("L", events)
        log.flush()
        return sets

    monkeypatch.setattr(verify_module, "_check_itemsets", then_a_listing_is_written)
    try:
        report = verify(path)
    finally:
        log.close()
    assert [str(p) for p in report.problems] == []


def test_rows_rewritten_up_to_the_head_are_found(store: Path) -> None:
    """An attacker edits row 15 and re-chains 15..20 (the hashes need no secret): every
    row matches its hash and links to the one before. The writer's head file, which
    `verify` trusts, holds the hash row 20 had when it was written (found in review:
    only the head's seq was compared, so the rewrite verified)."""
    from guard.audit.schema import TABLES, TIMESTAMP_COLUMNS, chain_hash

    segment = _segments(store)[1]
    names = [name for name, _ in TABLES["decisions"]]
    cols = ", ".join(f"epoch_us({n})" if n in TIMESTAMP_COLUMNS else n for n in names)
    con = duckdb.connect()
    rows = con.execute(f"SELECT {cols} FROM read_parquet('{segment}') ORDER BY seq").fetchall()
    con.close()
    prev, relinked = None, []
    for row in map(list, rows):
        if row[-3] >= 15:
            if row[-3] == 15:
                row[names.index("user_id")] = "mallory"
            row[-2] = prev or row[-2]
            row[-1] = chain_hash("decisions", row[:-1])
            relinked.append(f"({row[-3]}, '{row[-2]}', '{row[-1]}')")
        prev = row[-1]
    _rewrite(
        segment,
        "SELECT t.* REPLACE (CASE WHEN t.seq = 15 THEN 'mallory' ELSE t.user_id END AS user_id,"
        " coalesce(v.p, t.prev_hash) AS prev_hash, coalesce(v.h, t.hash) AS hash) FROM {t} t"
        f" LEFT JOIN (VALUES {', '.join(relinked)}) v(s, p, h) ON v.s = t.seq ORDER BY t.seq",
    )
    with open_store(store) as db:  # readers see the forgery
        assert db.sql("SELECT user_id FROM decisions WHERE seq = 15").fetchall() == [("mallory",)]
    first = verify(store).first
    assert first is not None and (first.table, first.seq) == ("decisions", 20)
    assert "head" in first.message


def test_the_first_bad_row_is_the_first_in_the_chain(store: Path) -> None:
    """Rows 3 and 4 swapped in the first segment, row 15 edited in the second: the first
    bad row is 3. (Found in review: problems came in the order of the checks, so the
    edit at 15, found by the chain walk, was named before the swap, found after it.)"""
    swapped = "CASE seq WHEN 3 THEN 4 WHEN 4 THEN 3 ELSE seq END"
    _rewrite(_segments(store)[0], f"SELECT * FROM {{t}} ORDER BY {swapped}")
    _set(_segments(store)[1], 15, "user_id", "'mallory'")
    report = verify(store)
    assert [p.seq for p in report.problems] == [3, 15]
    first = CliRunner().invoke(main, ["verify", str(store)])
    assert first.exit_code == 1 and "seq 3 " in first.output and "seq 15" not in first.output


def test_a_null_item_added_to_a_listing_is_an_edit(tmp_path: Path) -> None:
    """A NULL item added to a listing shows readers one more component (every answer
    NULL). verify died on it with AttributeError (found in review), in a segment and in
    a hot file alike; it is an edited row."""
    import shutil

    path = tmp_path / "store"
    _hidden_listings(inline_listings(AuditLog(path)))
    segment = _segments(path, "listings")[0]
    _rewrite(
        segment,
        "SELECT * REPLACE (CASE WHEN seq = 2 THEN list_concat(items, [NULL]) ELSE items END"
        " AS items) FROM {t}",
    )
    with open_store(path) as db:
        assert db.sql("SELECT count(*) FROM decisions WHERE decision_id = 'L1.5'").fetchall() == [
            (1,)
        ]
    first = verify(path).first
    assert first is not None and (first.table, first.seq) == ("listings", 2)
    assert "edited" in first.message

    live, killed = tmp_path / "live", tmp_path / "killed"
    log = inline_listings(AuditLog(live, segment_age=3600))
    try:
        log.append_listing("L", [event(i, method="tools/list", action="list") for i in range(3)])
        assert log.flush()
        shutil.copytree(live, killed)  # the hot file as a kill -9 leaves it
    finally:
        log.close()
    (hot,) = (killed / "listings").glob("*.jsonl")
    hot.write_bytes(hot.read_bytes().replace(b'"items":[', b'"items":[null,', 1))
    first = verify(killed).first
    assert first is not None and (first.table, first.seq) == ("listings", 1)
    assert "edited" in first.message
