"""The README's decision-record sections, claim by claim, against real files (and, for
the commands, a real `mcp-guard` process)."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
from pathlib import Path

import duckdb
from audit_kit import event, run_script

from guard.audit import AuditLog, open_store
from guard.audit.segments import scan_segments


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


_KILLED_WRITER = """
import os, signal, sys
from audit_kit import append_calls
from guard.audit import AuditLog

log = AuditLog(sys.argv[1], flush_interval=3600)
append_calls(log, 0, 30)  # 30 decisions and their outcomes
log.flush()  # in the hot files from now on
os.kill(os.getpid(), signal.SIGKILL)
"""

_CLI = "import sys; from guard.cli import main; sys.argv[0] = 'mcp-guard'; main()"


def _mcp_guard(*args: str | Path, returncode: int = 0) -> subprocess.CompletedProcess[str]:
    return run_script(_CLI, *args, returncode=returncode)


def test_the_store_commands_on_what_a_killed_writer_left(tmp_path: Path) -> None:
    """The README's four commands, as a real process, on the hot files a `kill -9` left:
    `tail` prints 20 records by default, oldest first; `verify` says ok, then exits 1
    naming "decisions writer … seq N … edited"; `compact` merges; `retention` keeps 180
    days by default."""
    store = tmp_path / "s"
    run_script(_KILLED_WRITER, store, returncode=-signal.SIGKILL)
    assert len(list((store / "decisions").glob("*.jsonl"))) == 1  # left behind

    tail = _mcp_guard("tail", store).stdout.splitlines()
    assert len(tail) == 20
    shown = [json.loads(line) for line in tail]
    assert [r["status"] for r in shown] == ["ok"] * 20
    assert [r["ts"] for r in shown] == sorted(r["ts"] for r in shown)

    ok = _mcp_guard("verify", store)
    assert ok.stdout.strip() == "ok: 60 rows in 2 chains verified"

    [hot] = (store / "decisions").glob("*.jsonl")
    lines = hot.read_bytes().splitlines(keepends=True)
    row = json.loads(lines[6])
    row["allowed"] = False
    hot.write_bytes(b"".join([*lines[:6], json.dumps(row).encode() + b"\n", *lines[7:]]))
    bad = _mcp_guard("verify", store, returncode=1)
    assert re.search(r"decisions writer \w+ seq 7 .*edited", bad.stderr), bad.stderr
    hot.write_bytes(b"".join(lines))

    kept = _mcp_guard("retention", store).stdout.splitlines()
    assert kept[0] == "decisions: 0 row(s) older than 180 days deleted", kept
    # the killed writer's hot files are untouched for less than 10 minutes: left as they are
    assert _mcp_guard("compact", store).stdout.splitlines()[0] == "decisions: nothing to do"
    assert len(list((store / "decisions").glob("*.jsonl"))) == 1
    old = time.time() - 601
    for path in store.glob("*/*.jsonl"):
        os.utime(path, (old, old))
    _mcp_guard("compact", store)
    assert not scan_segments(store / "decisions")[1]  # converted: beside its segment a while
    assert len(list((store / "decisions").glob("*.parquet"))) == 1
    for path in store.glob("*/*.parquet"):
        os.utime(path, (old, old))  # as if the grace had passed
    _mcp_guard("compact", store)
    assert not list((store / "decisions").glob("*.jsonl"))
    assert _mcp_guard("verify", store).stdout.strip() == "ok: 60 rows in 2 chains verified"


def test_the_store_layout_is_as_the_readme_draws_it(tmp_path: Path) -> None:
    """The layout block: `<table>/<writer>-<first seq>.jsonl` then `.parquet`,
    `itemsets/<sha256>.jsonl`, `policies/<policy hash>.jsonl`, `writers/<writer>.json`
    holding each chain's head (seq, hash), `spill/<writer>.jsonl`."""
    from dataclasses import replace

    from guard.policy import load_policies

    store = tmp_path / "s"
    policies = load_policies({"name": "p", "rules": [{"name": "r", "effect": "allow"}]})
    log = AuditLog(store, flush_interval=3600)
    log.record_policies(policies)
    listed = [
        replace(event(i, method="tools/list", action="list", args={}), decision_id=f"L.{i + 1}")
        for i in range(3)
    ]
    log.append_listing("L", listed)
    log.append(event(1))
    log.append_outcome("d", "ok", 1.0, None)
    log.flush()
    w = log.writer_id
    for table in ("decisions", "outcomes", "listings"):
        assert [p.name for p in (store / table).iterdir()] == [f"{w}-{1:012d}.jsonl"]
    assert [p.name for p in (store / "policies").iterdir()] == [f"{policies.hash}.jsonl"]
    [itemset] = (store / "itemsets").iterdir()
    assert re.fullmatch(r"[0-9a-f]{64}\.jsonl", itemset.name)
    assert (store / "spill" / f"{w}.jsonl").exists()
    head = json.loads((store / "writers" / f"{w}.json").read_text())
    with open_store(store) as con:
        for table in ("decisions", "outcomes", "listings"):
            last = con.execute(f"SELECT seq, hash FROM {table} ORDER BY seq DESC LIMIT 1")
            assert head[table] == dict(zip(("seq", "hash"), last.fetchone(), strict=True))
    log.close()
    for table in ("decisions", "outcomes", "listings"):
        # (the hot file stays beside its segment a while, for queries that listed it)
        segments, hot = scan_segments(store / table)
        assert [p.name for p in segments] == [f"{w}-{1:012d}.parquet"] and hot == []


def test_stats_counts_what_the_readme_lists(tmp_path: Path) -> None:
    log = AuditLog(tmp_path / "s")
    try:
        keys = set(log.stats())
    finally:
        log.close()
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    section = readme[readme.index("`AuditLog.stats()` returns") :]
    section = section[: section.index("\n\n")]
    named = set(re.findall(r"`([a-z_]+)`", section))
    # (`flush_seconds_sum` / `_count` / `_last`; the options and metrics it mentions)
    named -= {"_count", "_last", "max_queue", "append", "mcpguard_audit_rows_failed_total"}
    named |= {"flush_seconds_count", "flush_seconds_last"}
    assert keys == named, keys ^ named
