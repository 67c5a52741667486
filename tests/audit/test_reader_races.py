"""Readers racing writers in other processes: every query `open_store` answers sees each
row once, and never loses one it saw, while the files it lists are converted, rolled up
and compacted (found in a stress review)."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

from audit_kit import PYTHON, append_calls, subprocess_env

from guard.audit import AuditLog, open_store, verify
from guard.audit.segments import (
    HOT_SUFFIX,
    MARKER_SUFFIX,
    SEGMENT_SUFFIX,
    marker_sources,
    scan_segments,
)

# a writer converting a hot file every 50 rows (and rolling 16 segments up into one),
# flushing every 20 ms, pausing `argv[2]` seconds between 10 calls, until killed
_BUSY_WRITER = """
import sys, time
from audit_kit import append_calls
from guard.audit import AuditLog

log = AuditLog(sys.argv[1], segment_rows=50, flush_interval=0.02)
print("ready", flush=True)
i = 0
while True:
    append_calls(log, i, 10)
    i += 10
    time.sleep(float(sys.argv[2]))
"""


def _busy_writer(store: Path, pause: float = 0.002) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [PYTHON, "-c", _BUSY_WRITER, str(store), str(pause)], env=subprocess_env(),
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    return proc


def test_a_big_table_directory_is_listed_as_one_snapshot(tmp_path: Path) -> None:
    """A store between compactions holds hundreds of files a table (a busy writer leaves
    a 25,000-row segment every few seconds, exited writers theirs). Python lists a
    directory ~400 entries at a time (one `getdents` each), and a file renamed or deleted
    between two of those can be missed: a hot file converted meanwhile was in neither form
    (its rows missing from that query, after an earlier one counted them), and a roll-up's
    marker missed while its merged file was seen counts rows twice. Hidden files stand in
    for the segments here (cheaper to make; they fill the listing as segments do). Before
    the fix about 1 listing in 200 lost a hot file under this writer, every run."""
    directory = tmp_path / "s" / "decisions"
    directory.mkdir(parents=True)
    for n in range(1500):
        (directory / f".{n:04d}-filler-of-a-big-directory-listing").touch()
    proc = _busy_writer(tmp_path / "s")
    lost: list[str] = []
    listings, before = 0, set[str]()
    try:
        end = time.monotonic() + 120  # (a count, not a window: a busy machine lists slower)
        while listings < 1500 and time.monotonic() < end and len(lost) < 5:
            files, hot = scan_segments(directory)
            listings += 1
            now = {p.name for p in (*files, *hot)}
            for name in before:
                segment = name.replace(HOT_SUFFIX, SEGMENT_SUFFIX)
                if name not in now and segment not in now and not _rolled_up(directory, segment):
                    lost.append(f"listing {listings}: {name} was in neither form")
            before = {p.name for p in hot}
    finally:
        proc.kill()
        proc.wait(30)
    print(f"{listings} listings: {lost}")
    assert listings >= 1500 or lost, listings
    assert not lost


def _rolled_up(directory: Path, segment: str) -> bool:
    """Whether a roll-up merged `segment` into a file that is there now (then the listing
    rightly shows that file instead)."""
    markers = [p.name for p in directory.glob(f"*{MARKER_SUFFIX}")]
    merged = marker_sources(directory, markers)
    return any(segment in sources and (directory / m).exists() for m, sources in merged.items())


def test_a_relation_fetched_after_its_hot_file_was_converted_still_reads(
    tmp_path: Path,
) -> None:
    """`store.sql(q)` lists the files and returns a relation; DuckDB runs it when it is
    fetched. A hot file converted in between was deleted at once, and `fetchall()` raised
    `IOException: No files found` (the README's own `store.sql(...).fetchall()`)."""
    store = tmp_path / "s"
    log = AuditLog(store, flush_interval=3600)
    append_calls(log, 0, 10)
    log.flush()
    reader = open_store(store)
    relation = reader.sql("SELECT count(*) FROM decision_log")  # lists the hot files
    log._writer.hot_age = 0.0  # as if 30 s had passed: converted at the next flush
    log.flush()
    deadline = time.monotonic() + 10
    while log.stats()["segments"] < 2 and time.monotonic() < deadline:
        log.flush()
        time.sleep(0.02)
    assert log.stats()["segments"] == 2  # decisions and outcomes
    assert relation.fetchall() == [(10,)]
    assert reader.sql("SELECT count(*) FROM decision_log").fetchall() == [(10,)]
    log.close()  # a hot file converted within its grace stays, skipped, after close too
    (kept,) = (store / "decisions").glob("*.jsonl")
    assert kept not in reader.files("decisions")
    assert reader.sql("SELECT count(*) FROM decision_log").fetchall() == [(10,)]
    later = AuditLog(store, flush_interval=3600)  # a writer running once its grace is over
    later._writer.converted_grace = 0.0
    later.flush()
    assert not list((store / "decisions").glob("*.jsonl"))
    later.close()
    assert reader.sql("SELECT count(*) FROM decision_log").fetchall() == [(10,)]
    reader.close()
    assert verify(store).ok


def test_a_converted_hot_file_goes_once_its_grace_is_over(tmp_path: Path) -> None:
    store = tmp_path / "s"
    log = AuditLog(store, flush_interval=3600, segment_rows=10)
    append_calls(log, 0, 10)  # 10 rows a table: both convert
    log.flush()
    deadline = time.monotonic() + 10
    while log.stats()["segments"] < 2 and time.monotonic() < deadline:
        log.flush()
        time.sleep(0.02)
    (kept,) = (store / "decisions").glob("*.jsonl")  # beside its segment, hidden
    with open_store(store) as con:
        assert con.execute("SELECT count(*) FROM decision_log").fetchone() == (10,)
    log._writer.converted_grace = 0.0  # as if the grace had passed
    log.flush()
    assert not kept.exists()
    log.close()


def test_relations_fetched_while_a_writer_converts_never_fail(tmp_path: Path) -> None:
    """A writer in another process converts a hot file every few flushes; a reader
    builds relations and fetches them, as the README does. Before the fix about 2 % of
    the fetches raised (a hot file listed, converted and deleted before it was read)."""
    store = tmp_path / "s"
    # ~2,000 calls a second at most: each count reads the whole store, and a busy machine's
    # reader fell behind a faster writer (55 fetches in 120 s, the store at 322,430 rows)
    proc = _busy_writer(store, pause=0.005)
    try:
        reader = open_store(store)
        errors: list[str] = []
        fetched, seen = 0, 0
        # enough fetches racing enough conversions, however slow the machine is today
        # (a fixed 6 s window made 40 fetches on a busy CI machine, 50 wanted)
        end = time.monotonic() + 300
        while (fetched < 60 or seen < 1000) and time.monotonic() < end:
            try:
                ((n,),) = reader.sql("SELECT count(*) FROM decision_log").fetchall()
                ((m,),) = reader.table("decisions").aggregate("count(*)").fetchall()
            except Exception as exc:  # what the test is looking for
                errors.append(repr(exc)[:160])
                continue
            fetched += 1
            assert m >= n >= seen  # never backwards (the second query runs later)
            seen = n
        reader.close()
    finally:
        proc.kill()
        proc.wait(30)
    print(f"{fetched} fetches, {len(errors)} errors, last count {seen}")
    assert fetched >= 60 and seen >= 1000, (fetched, seen)
    assert not errors, f"{len(errors)} of {fetched + len(errors)} fetches failed: {errors[:3]}"


def test_a_query_streaming_when_a_writer_closes_still_reads_its_hot_file(
    tmp_path: Path,
) -> None:
    """`store.execute(q)` runs a query until its first rows are ready (DuckDB streams the
    rest as they are fetched), and a relation runs when fetched: a hot file listed but
    not opened yet must still be there. `close()` converted the writer's last hot files
    and deleted them at once: a server stopping (SIGTERM, a worker recycled) made a
    dashboard's query fail with `IOException: Cannot open file ....jsonl`."""
    from audit_kit import event

    store = tmp_path / "s"
    done = AuditLog(store)  # enough rows in segments that the query streams
    for i in range(30_000):
        done.append(event(i, args={"pad": "x" * 500, "i": i}))
    done.close()
    log = AuditLog(store, flush_interval=3600)
    append_calls(log, 0, 10)
    assert log.flush(10)
    reader = open_store(store)
    assert reader.files("decisions")[-1].suffix == HOT_SUFFIX
    streaming = reader.execute("SELECT * FROM decisions")
    relation = reader.sql("SELECT count(*) FROM decision_log")
    log.close()  # converts its hot files
    assert len(streaming.fetchall()) == 30_010
    assert relation.fetchall() == [(30_010,)]
    assert reader.sql("SELECT count(*) FROM decision_log").fetchall() == [(30_010,)]
    reader.close()
    assert verify(store).ok
