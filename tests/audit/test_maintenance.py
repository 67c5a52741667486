"""Compaction and retention: on purpose only, safe for readers and writers running meanwhile,
and the chains still verify afterwards."""

from __future__ import annotations

import itertools
import os
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from audit_kit import append_calls, event
from click.testing import CliRunner

from guard.audit import AuditLog, apply_retention, compact, open_store, verify
from guard.cli import main


def _fill(store: Path, flushes: int, per_flush: int, **kwargs: object) -> AuditLog:
    """A writer whose every flush becomes one segment per table."""
    kwargs.setdefault("segment_rows", per_flush)
    log = AuditLog(store, **kwargs)  # type: ignore[arg-type]
    for f in range(flushes):
        append_calls(log, f * per_flush, per_flush)
        log.flush()
    return log


def test_compaction_merges_segments_and_keeps_every_row(tmp_path: Path) -> None:
    store = tmp_path / "s"
    _fill(store, 12, 50).close()
    _fill(store, 3, 10).close()  # a second writer's chain
    assert len(list((store / "decisions").glob("*.parquet"))) == 15
    assert compact(store) == {"decisions": 15, "outcomes": 15, "listings": 0, "itemsets": 0}
    with open_store(store) as con:
        assert len(con.files("decisions")) == 1
    # replaced files stay for queries already reading them, then go
    assert len(list((store / "decisions").glob("*.parquet"))) == 16
    compact(store, grace=0)
    assert len(list((store / "decisions").glob("*.parquet"))) == 1
    assert not list((store / "decisions").glob("*.replaces"))
    with open_store(store) as con:
        assert con.execute(
            "SELECT count(*), count(DISTINCT decision_id) FROM decision_log"
        ).fetchall() == [(630, 630)]
    report = verify(store)
    assert report.ok and report.chains == 4


def test_readers_never_double_count_during_compaction(tmp_path: Path) -> None:
    store = tmp_path / "s"
    log = _fill(store, 20, 20, flush_interval=0.05)
    reader = open_store(store)
    counts: list[int] = []
    stop = threading.Event()

    def read() -> None:
        while not stop.is_set():
            counts.append(reader.execute("SELECT count(*) FROM decisions").fetchone()[0])

    t = threading.Thread(target=read)
    t.start()
    for round_ in range(5):
        seen = len(counts)
        for i in range(20):
            log.append(event(10_000 + round_ * 100 + i))
        log.flush()
        compact(store)
        # at least one read per round, however slow a loaded machine makes them
        deadline = time.monotonic() + 30
        while len(counts) <= seen and time.monotonic() < deadline:
            time.sleep(0.01)
    stop.set()
    t.join()
    log.close()
    assert len(counts) >= 5
    assert all(a <= b for a, b in itertools.pairwise(counts))  # never more, then less
    assert max(counts) <= 500
    assert reader.execute("SELECT count(*) FROM decisions").fetchone()[0] == 500
    reader.close()
    assert verify(store).ok


def test_retention_drops_old_rows_from_the_chain_start(tmp_path: Path) -> None:
    store = tmp_path / "s"
    _fill(store, 4, 25).close()
    with open_store(store) as con:
        ts = sorted(t for (t,) in con.execute("SELECT ts FROM decisions ORDER BY seq").fetchall())
    now = ts[60] + timedelta(days=180)  # rows 0..59 are older than 180 days at `now`
    dropped = apply_retention(store, days=180, now=now)
    assert dropped["decisions"] == 60
    with open_store(store) as con:
        assert con.execute("SELECT min(seq), count(*) FROM decisions").fetchall() == [(61, 40)]
    assert verify(store).ok  # the chain now starts at the recorded anchor
    # a row deleted after retention is still caught
    kept = apply_retention(store, days=180, now=now)
    assert kept == {"decisions": 0, "outcomes": 0, "listings": 0, "itemsets": 0}


def test_verify_lists_every_retention_cut_it_accepted(tmp_path: Path) -> None:
    """Anchors are trusted like the heads (the hashes need no secret): a forged one would
    hide the start of a chain. verify and its CLI list every cut, so one compared with a
    copy kept elsewhere stands out (found in review: nothing showed them)."""
    import json

    store = tmp_path / "s"
    _fill(store, 2, 10).close()
    with open_store(store) as con:
        ts = sorted(t for (t,) in con.execute("SELECT ts FROM decisions").fetchall())
    apply_retention(store, days=180, now=ts[5] + timedelta(days=180))
    report = verify(store)
    assert report.ok
    cuts = {(c.table, c.first_seq) for c in report.cuts}
    assert ("decisions", 6) in cuts
    # a cut nobody ran: the first rows of the outcomes chain deleted behind a forged anchor
    (wid,) = {c.writer_id for c in report.cuts}
    (store / "anchors" / f"outcomes-{wid}.json").write_text(
        json.dumps({"first_seq": 15, "prev_hash": "0" * 64, "cut_at": "2020-01-01T00:00:00+00:00"})
    )
    out = CliRunner().invoke(main, ["verify", str(store)]).output
    assert f"outcomes writer {wid}: rows before seq 15 deleted by retention" in out


def test_retention_cli_and_compact_cli(tmp_path: Path) -> None:
    store = tmp_path / "s"
    _fill(store, 3, 5).close()
    runner = CliRunner()
    out = runner.invoke(main, ["retention", str(store), "--days", "180"])
    assert out.exit_code == 0 and "decisions: 0 row(s)" in out.output
    assert "itemsets: 0 item set(s) no row names any more deleted" in out.output
    out = runner.invoke(main, ["compact", str(store)])
    assert out.exit_code == 0 and "decisions: 3 segment(s) merged" in out.output
    out = runner.invoke(main, ["tail", str(store), "-n", "2"])
    assert (
        out.exit_code == 0
        and len(out.output.splitlines()) == 2
        and '"user_id": "alice"' in out.output
    )
    future = datetime.now(UTC) + timedelta(days=400)
    assert apply_retention(store, days=180, now=future)["decisions"] == 15
    with open_store(store) as con:
        assert con.execute("SELECT count(*) FROM decisions").fetchall() == [(0,)]
    assert verify(store).ok


def test_a_busy_writer_rolls_its_segments_up(tmp_path: Path) -> None:
    store = tmp_path / "s"
    reader = open_store(store)
    log = AuditLog(store, segment_rows=3)  # a segment per flush, as a quiet server's
    seen = []
    for f in range(300):  # 300 flushes: 16 -> 1 -> (16 -> 1) merges keep the files few
        for i in range(3):
            log.append(event(f * 3 + i))
        log.flush()
        seen.append(reader.execute("SELECT count(*) FROM decisions").fetchone()[0])
    log.close()
    files = [p.name for p in reader.files("decisions")]
    assert len(files) < 30 and any(".L2." in f for f in files)
    assert seen == [3 * (f + 1) for f in range(300)]  # every row, exactly once, at every flush
    assert verify(store).ok
    reader.close()


def test_a_writer_never_rolls_up_segments_compact_already_merged(tmp_path: Path) -> None:
    """`compact` may merge a running writer's segments between two of its flushes; the
    writer's next roll-up must not merge them a second time (every row would count twice
    once the grace period is over)."""
    store = tmp_path / "s"
    log = _fill(store, 10, 2)  # 10 small segments per table: below the roll-up fan-in
    compact(store)
    for f in range(10, 20):  # 6 more flushes reach the fan-in of 16
        for i in range(2):
            log.append(event(f * 2 + i))
        log.flush()
    log.close()
    compact(store, grace=0)
    with open_store(store) as con:
        assert con.execute("SELECT count(*), count(DISTINCT seq) FROM decisions").fetchone() == (
            40,
            40,
        )
    assert verify(store).ok


def test_a_store_whose_path_holds_a_quote_is_written_read_verified_and_maintained(
    tmp_path: Path,
) -> None:
    """Every query names files as SQL string literals (`segments.sql_paths`): a quote in
    the store's path must not break (or inject into) any of them."""
    from guard.policy.model import Resource

    store = tmp_path / "it's the audit" / "s"
    for batch in range(3):  # three segments per table, for compaction
        log = AuditLog(store)
        append_calls(log, batch * 10, 10)
        listed = [event(n, resource=Resource("tool", f"t{n}"), method="tools/list",
                        action="list") for n in range(3)]  # fmt: skip
        for n, ev in enumerate(listed, 1):
            ev.decision_id = f"L{batch}.{n}"
        log.append_listing(f"L{batch}", listed)
        log.close()
    with open_store(store) as con:
        assert con.execute("SELECT count(*) FROM decision_log").fetchone() == (39,)
        assert con.execute("SELECT count(*) FROM listings").fetchone() == (3,)
    assert verify(store).ok
    assert compact(store)["decisions"] == 3
    assert apply_retention(store, days=180)["decisions"] == 0
    report = verify(store)
    assert report.ok and report.rows == 30 + 30 + 3


def test_compaction_syncs_the_merged_entry_before_deleting_what_it_replaces(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A power loss must not keep the sources' deletion and lose the merged file's name.
    store = tmp_path / "s"
    _fill(store, 3, 10).close()
    steps: list[str] = []
    real_fsync, real_replace, real_unlink = os.fsync, os.replace, Path.unlink
    directory = os.path.realpath(store / "decisions")

    def fsync(fd: int) -> None:
        real_fsync(fd)
        if os.path.realpath(f"/proc/self/fd/{fd}") == directory:
            steps.append("sync dir")

    def replace(src: Any, dst: Any) -> None:
        real_replace(src, dst)
        if str(dst).endswith(".parquet"):
            steps.append("merged")

    def unlink(path: Path, missing_ok: bool = False) -> None:
        real_unlink(path, missing_ok)
        if path.suffix == ".parquet" and os.path.realpath(path.parent) == directory:
            steps.append("deleted")

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    monkeypatch.setattr(Path, "unlink", unlink)
    compact(store, grace=0)
    assert "merged" in steps and "deleted" in steps, steps
    merged, deleted = steps.index("merged"), steps.index("deleted")
    assert "sync dir" in steps[merged:deleted], steps


def test_compaction_merges_in_bounded_files_and_leaves_full_ones_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Found in review: `compact` merged every segment of a table into one file, sorting
    the whole table in memory at each run (2 GB for a million rows here), so a daily
    compaction of a store kept 180 days rewrote all of it, in ever more memory."""
    import duckdb

    from guard.audit import maintenance
    from guard.audit.segments import live_segments, sql_paths

    store = tmp_path / "s"
    _fill(store, 12, 50).close()
    segments = live_segments(store / "decisions")
    sizes = duckdb.execute(
        "SELECT sum(total_uncompressed_size) FROM parquet_metadata("
        f"[{sql_paths(segments)}]) GROUP BY file_name"
    ).fetchall()
    # room for about four of these segments in a merged file
    monkeypatch.setattr(maintenance, "MERGED_BYTES", 4 * max(s for (s,) in sizes) + 1)
    compact(store, grace=0)
    merged = live_segments(store / "decisions")
    assert 3 <= len(merged) <= 4  # 12 segments, ~4 to a file
    assert all(path.name.startswith("compact-") for path in merged)
    with open_store(store) as con:
        assert con.execute(
            "SELECT count(*), count(DISTINCT decision_id) FROM decisions"
        ).fetchall() == [(600, 600)]
    assert verify(store).ok
    # a second compaction finds nothing small enough to merge with anything
    compact(store, grace=0)
    assert live_segments(store / "decisions") == merged
    # new segments are merged among themselves, not with the full files
    _fill(store, 4, 50).close()
    compact(store, grace=0)
    after = live_segments(store / "decisions")
    assert set(merged) <= set(after) and len(after) == len(merged) + 1
    assert verify(store).ok


def test_retention_rewrites_only_the_files_holding_rows_that_go(tmp_path: Path) -> None:
    """Found in review: retention rewrote every segment of a table into one file, reading
    and sorting the whole store in memory at each daily cut to drop its oldest rows."""
    from guard.audit.segments import live_segments

    store = tmp_path / "s"
    _fill(store, 4, 25).close()
    before = live_segments(store / "decisions")
    assert len(before) == 4
    with open_store(store) as con:
        ts = sorted(t for (t,) in con.execute("SELECT ts FROM decisions").fetchall())
    now = ts[60] + timedelta(days=180)  # the first two segments go, the third in part
    assert apply_retention(store, days=180, now=now)["decisions"] == 60
    after = live_segments(store / "decisions")
    assert before[3] in after  # the newest segment was not rewritten
    assert not set(before[:3]) & set(after)
    with open_store(store) as con:
        assert con.execute("SELECT min(seq), count(*) FROM decisions").fetchall() == [(61, 40)]
    assert verify(store).ok
