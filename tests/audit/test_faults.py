"""Fault injection: queue overflow, segment write failures (disk full, a broken directory),
spill failures, writers that die with spilled rows. Nothing is lost; everything is counted."""

from __future__ import annotations

import errno
import json
import shutil
import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from audit_kit import adopted_decisions, event, run_script, spill_dir_gone

from guard.audit import AuditLog, open_store, verify
from guard.events import DecisionEvent


def _count(store: Path) -> int:
    with open_store(store) as con:
        return int(con.execute("SELECT count(DISTINCT decision_id) FROM decisions").fetchone()[0])


def test_queue_overflow_spills_then_everything_lands(tmp_path: Path) -> None:
    entered, release = threading.Event(), threading.Event()

    def stall(table: str, rows: int) -> None:
        entered.set()
        release.wait(30)  # the store is slow: the queue fills up behind it

    log = AuditLog(tmp_path / "s", batch_size=10, max_queue=100, write_hook=stall)
    for i in range(10):
        log.append(event(i))
    assert entered.wait(10)
    for i in range(10, 1010):
        log.append(event(i))
    stats = log.stats()
    assert stats["queue_depth"] == 100 and stats["spilled"] == 900
    release.set()
    log.close()
    stats = log.stats()
    assert stats["reloaded_from_spill"] == 900 and stats["spill_pending"] == 0
    assert stats["written_decisions"] == 1010 and stats["failed"] == 0
    assert _count(tmp_path / "s") == 1010
    assert verify(tmp_path / "s").ok


def test_close_with_a_stuck_write_spills_the_slice_the_writer_holds(tmp_path: Path) -> None:
    """Found in review: `close(timeout)` while the store's disk hung spilled what was still
    queued, not the slice the writer thread had taken from the queue (up to 5,000 rows):
    the process exits and they were gone."""
    entered, release = threading.Event(), threading.Event()

    def stall(table: str, rows: int) -> None:
        entered.set()
        release.wait(30)  # the store's disk hangs

    store = tmp_path / "s"
    log = AuditLog(store, batch_size=10, flush_interval=3600, write_hook=stall)
    ids = set()
    for i in range(30):
        ev = event(i)
        ids.add(ev.decision_id)
        log.append(ev)
        if i == 9:
            assert entered.wait(10)  # the writer took the first 10 and hangs writing them
    log.close(timeout=0.5)
    # (if the process exited now) every record is in the store or in the spill file
    spilled = [json.loads(json.loads(line)["b"] + "}")["decision_id"]
               for line in log._spill.path.read_bytes().splitlines()]  # fmt: skip
    assert sorted(spilled) == sorted(ids) and log.stats()["spilled"] == 30
    release.set()  # the disk comes back: the stuck write goes on, after close gave up
    log._thread.join(10)
    assert adopted_decisions(store) == sorted(ids)  # each once


def test_a_stuck_write_that_lands_after_close_gave_up_stores_its_rows_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The hang is inside the write itself: the slice close() spilled reaches the store as
    well once the disk comes back. Until the writer thread has let go of its spill file,
    no other writer adopts it; then its rows are checked against the store."""
    import os

    entered, release = threading.Event(), threading.Event()
    write = os.write

    def hanging_write(fd: int, data: Any) -> int:
        if threading.current_thread().name.startswith("mcp-guard-") and not release.is_set():
            entered.set()
            release.wait(30)
        return write(fd, data)

    store = tmp_path / "s"
    log = AuditLog(store, batch_size=10, flush_interval=3600)
    monkeypatch.setattr(os, "write", hanging_write)
    for i in range(30):
        log.append(event(i))
        if i == 9:
            assert entered.wait(10)
    log.close(timeout=0.5)
    assert log.stats()["spilled"] == 30
    early = AuditLog(store)  # another writer starts meanwhile: not yet its rows to load
    assert early.stats()["spill_pending"] == 0
    release.set()  # the write lands: 10 rows in the store and in the spill file
    log._thread.join(10)
    early.close()
    heir = AuditLog(store)
    heir.close()
    assert _distinct(store) == (30, 30)
    assert verify(store).ok


def test_the_queue_bound_counts_each_component_of_a_listing(tmp_path: Path) -> None:
    """A listing is one queued item but holds a record per component (~30 KB of row for
    100 tools): the bound, and the batch that wakes the writer, count its records."""
    entered, release = threading.Event(), threading.Event()

    def stall(table: str, rows: int) -> None:
        entered.set()
        release.wait(30)

    store = tmp_path / "s"
    log = AuditLog(store, batch_size=250, max_queue=250, flush_interval=3600, write_hook=stall)

    def listing(n: int) -> list[DecisionEvent]:
        return [replace(event(i), decision_id=f"L{n}.{i + 1}") for i in range(100)]

    log.append_listing("L0", listing(0))
    log.append_listing("L1", listing(1))
    assert not entered.wait(0.3)  # 200 records: below the batch, the writer sleeps on
    log.append_listing("L2", listing(2))  # 300 > 250: wakes the writer, and is spilled
    assert entered.wait(10)  # the writer took L0 and L1 and stalls writing them
    stats = log.stats()
    assert stats["queue_depth"] == 0 and stats["spilled"] == 1
    for n in range(3, 6):
        log.append_listing(f"L{n}", listing(n))
    assert log.stats()["queue_depth"] == 200  # L3, L4 queued; L5 spilled
    assert log.stats()["spilled"] == 2
    release.set()
    log.close()
    with open_store(store) as con:
        listed = con.execute(
            "SELECT count(DISTINCT decision_id), count(DISTINCT split_part(decision_id, '.', 1)) "
            "FROM decisions"
        )
        assert listed.fetchone() == (600, 6)
    assert log.stats()["queue_depth"] == 0 and verify(store).ok


def test_disk_full_spills_and_reloads_when_space_returns(tmp_path: Path) -> None:
    failures = {"left": 3}

    def disk_full(table: str, rows: int) -> None:
        if failures["left"] > 0:
            failures["left"] -= 1
            raise OSError(errno.ENOSPC, "No space left on device")

    log = AuditLog(tmp_path / "s", write_hook=disk_full)
    for i in range(300):
        log.append(event(i))
        if i % 100 == 99:
            log.flush()
    log.close()
    stats = log.stats()
    assert stats["spilled"] >= 100 and stats["failed"] >= stats["spilled"]  # retries count too
    assert stats["reloaded_from_spill"] == stats["spilled"] and stats["spill_pending"] == 0
    assert "No space left" in str(log.last_error)
    assert _count(tmp_path / "s") == 300
    assert verify(tmp_path / "s").ok


def test_a_broken_segment_directory_spills_until_repaired(tmp_path: Path) -> None:
    store = tmp_path / "s"
    log = AuditLog(store, flush_interval=0.05)
    shutil.rmtree(store / "decisions")
    (store / "decisions").write_text("not a directory")  # real OS errors on every write
    for i in range(50):
        log.append(event(i))
    log.flush()
    assert log.stats()["spill_pending"] == 50 and log.stats()["failed"] >= 50
    (store / "decisions").unlink()
    (store / "decisions").mkdir()
    for i in range(50, 60):
        log.append(event(i))
    log.close()
    assert log.stats()["spill_pending"] == 0
    assert _count(store) == 60 and verify(store).ok


def test_rows_spilled_by_a_dead_writer_are_adopted(tmp_path: Path) -> None:
    def always_fail(table: str, rows: int) -> None:
        raise OSError(errno.EIO, "I/O error")

    dead = AuditLog(tmp_path / "s", write_hook=always_fail)
    for i in range(25):
        dead.append(event(i))
    dead.close()  # could not write: its rows stay in its spill file
    assert dead.stats()["spill_pending"] == 25
    assert any((tmp_path / "s" / "spill").glob("*.jsonl"))
    heir = AuditLog(tmp_path / "s")
    heir.close()
    assert heir.stats()["reloaded_from_spill"] == 25
    assert _count(tmp_path / "s") == 25 and verify(tmp_path / "s").ok
    assert not list((tmp_path / "s" / "spill").glob("*.jsonl"))


def test_spilled_lines_that_cannot_be_loaded_back_are_set_aside_and_counted(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Found in review: a torn or garbage line, or a row of a table this version does not
    know, was dropped without a word when spilled rows were loaded back, and a row without
    its `decision_id` made the duplicate check raise, so no spilled row was loaded back."""
    from audit_kit import RAW_API_KEY

    from guard.telemetry.metrics import AuditCollector

    def always_fail(table: str, rows: int) -> None:
        raise OSError(errno.EIO, "I/O error")

    store = tmp_path / "s"
    dead = AuditLog(store, write_hook=always_fail)
    for i in range(5):
        dead.append(event(i))
    dead.close()  # its 5 rows stay in its spill file
    (orphan,) = (store / "spill").glob("*.jsonl")
    bad = [
        f'{{"t":"decisions","b":"{{\\"decision_id\\":\\"x\\",\\"args\\":\\"{RAW_API_KEY}'.encode(),
        b'{"t":"future_table","b":"{\\"decision_id\\":\\"f1\\""}',
        b'{"t":"decisions","b":"{\\"ts\\":1"}',
    ]
    good = orphan.read_bytes().splitlines(keepends=True)
    orphan.write_bytes(
        b"".join([good[0], bad[0] + b"\n", *good[1:3], *(b + b"\n" for b in bad[1:]), *good[3:]])
    )
    with caplog.at_level("WARNING", logger="guard.audit"):
        heir = AuditLog(store)  # adopts the file, and checks its rows against the store
        heir.close()
    assert _distinct(store) == (5, 5) and verify(store).ok
    (rejected,) = (store / "spill").glob("*.rejected")
    assert rejected.read_bytes().splitlines() == bad  # kept as they were
    assert heir.stats()["spill_rejected"] == 3
    assert "3 lines of spill file" in caplog.text and RAW_API_KEY not in caplog.text
    collector = AuditCollector()
    collector.add(heir.stats)
    failed = {m.name: m.samples[0].value for m in collector.collect()}["mcpguard_audit_rows_failed"]
    assert failed == 3


def test_when_even_the_spill_fails_rows_wait_in_memory(tmp_path: Path) -> None:
    failing = {"on": True}

    def hook(table: str, rows: int) -> None:
        if failing["on"]:
            raise OSError(errno.ENOSPC, "No space left on device")

    log = AuditLog(tmp_path / "s", write_hook=hook)
    spill_dir_gone(log)
    for i in range(20):
        log.append(event(i))
    log.flush()
    assert log.stats()["unsaved"] == 20
    failing["on"] = False
    log.close()
    assert log.stats()["unsaved"] == 0 and _count(tmp_path / "s") == 20


def test_rows_waiting_in_memory_count_toward_the_queue_bound(tmp_path: Path) -> None:
    """Found in review: with the store and the spill file both refusing, the writer kept
    taking rows off the queue into memory, without bound, and every call went on being
    allowed with no record anywhere. Rows held in memory now count toward `max_queue`:
    once it is reached, a record goes to the spill file on the request path, which
    refuses it, so `append` fails and the call is denied (fail closed)."""
    failing = {"on": True}

    def hook(table: str, rows: int) -> None:
        if failing["on"]:
            raise OSError(errno.ENOSPC, "No space left on device")

    log = AuditLog(tmp_path / "s", write_hook=hook, max_queue=50)
    spill_dir_gone(log)
    accepted = []
    for i in range(200):
        accepted.append(log.append(event(i)))
        if i % 10 == 9:
            log.flush()  # the writer takes what is queued, and keeps it in memory
    assert accepted[:50] == [True] * 50
    assert accepted.count(True) == 50, f"{accepted.count(True)} records accepted, bound 50"
    assert log.stats()["unsaved"] == 50 and log.stats()["append_errors"] == 150
    failing["on"] = False
    log.close()
    assert _count(tmp_path / "s") == 50


def _distinct(store: Path) -> tuple[int, int]:
    with open_store(store) as con:
        row = con.execute("SELECT count(*), count(DISTINCT decision_id) FROM decisions").fetchone()
    return int(row[0]), int(row[1])


_DIE_WHILE_RELOADING = """
import errno, os, signal, sys
from audit_kit import event
from guard.audit import AuditLog, spill

failing = [True]
def hook(table, rows):
    if failing[0]:
        raise OSError(errno.ENOSPC, "No space left on device")

def die(self, *args):  # the spilled rows are back in the store; the spill not yet cut
    os.kill(os.getpid(), signal.SIGKILL)

log = AuditLog(sys.argv[1], write_hook=hook, flush_interval=3600)
for i in range(30):
    log.append(event(i))
log.flush()  # the store refuses: 30 rows spilled
assert log.stats()["spill_pending"] == 30, log.stats()
failing[0] = False
spill.SpillFile.cut = die
log.flush()
"""


def _killed_while_reloading(store: Path) -> Path:
    """`store` of a writer killed while loading its 30 spilled rows back (all stored)."""

    run_script(_DIE_WHILE_RELOADING, str(store), returncode=-9)
    return store


def test_a_writer_killed_while_loading_spilled_rows_back_stores_them_once(
    tmp_path: Path,
) -> None:
    """Found in review: the heir adopted rows the dead writer had already stored."""
    store = _killed_while_reloading(tmp_path / "s")
    assert _distinct(store) == (30, 30)
    heir = AuditLog(store)  # adopts the dead writer's spill file
    heir.close()
    assert _distinct(store) == (30, 30)
    assert heir.stats()["spill_pending"] == 0 and verify(store).ok


def test_an_orphan_adopted_by_another_worker_meanwhile_does_not_store_rows_twice(
    tmp_path: Path,
) -> None:
    """Workers starting at once race to adopt dead writers' spill files: a lock file gone
    between listing and opening (another worker adopted it) raised, and the rows adopted
    before it skipped the duplicate check: stored twice."""
    import os

    store = _killed_while_reloading(tmp_path / "s")
    # listed but gone when opened, deterministically: a dangling link
    os.symlink(store / "spill" / "gone-meanwhile", store / "spill" / "zzzz-other-worker.lock")
    heir = AuditLog(store)
    heir.close()
    assert _distinct(store) == (30, 30)
    assert verify(store).ok


def test_a_spill_file_that_cannot_be_cut_back_stores_its_rows_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Found in review: a failed rewrite (now: cut) left loaded rows in the spill file,
    and every later flush loaded them again."""
    from guard.audit import spill

    failing = {"store": True, "cuts": 0}

    def hook(table: str, rows: int) -> None:
        if failing["store"]:
            raise OSError(errno.ENOSPC, "No space left on device")

    cut = spill.SpillFile.cut

    def flaky(self: Any, start: int, lines: int) -> None:
        if failing["cuts"] > 0:  # (an I/O error)
            failing["cuts"] -= 1
            raise OSError(errno.ENOSPC, "No space left on device")
        cut(self, start, lines)

    monkeypatch.setattr(spill.SpillFile, "cut", flaky)
    store = tmp_path / "s"
    log = AuditLog(store, write_hook=hook, flush_interval=3600)
    for i in range(30):
        log.append(event(i))
    log.flush()
    failing.update(store=False, cuts=2)
    time.sleep(1.1)  # past the retry interval of a store that failed
    log.flush()  # loaded back; the cut fails
    log.flush()  # again
    log.close()
    assert _distinct(store) == (30, 30)
    assert log.stats()["spill_pending"] == 0 and verify(store).ok


def test_a_failed_write_that_cannot_be_cut_back_keeps_its_landed_rows_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A write that fails part-way, and whose cut-back fails too (two I/O errors in a
    row), leaves complete lines in the hot file: they are rows of the chain, and only
    the rest of the batch is written again (found in review: the whole batch was, so
    five rows were stored twice under the same seqs)."""
    import os as real_os

    from guard.audit import writer as writer_module

    store = tmp_path / "s"
    log = AuditLog(store, flush_interval=3600)
    for i in range(10):
        log.append(event(i))
    log.flush()  # seq 1..10 in the hot file
    hot_fd = log._writer._hot["decisions"].fd
    write, truncate = real_os.write, real_os.ftruncate
    state = {"writes": 0, "truncate_fails": True}

    def failing_write(fd: int, data: Any) -> int:
        if fd != hot_fd or state["writes"] >= 2:
            return write(fd, data)
        state["writes"] += 1
        if state["writes"] == 1:  # a short write: five whole lines and a piece of one
            data = bytes(data)
            cut = [n for n, b in enumerate(data) if b == 10][4] + 20
            return write(fd, data[:cut])
        raise OSError(errno.EIO, "Input/output error")  # then the disk fails

    def failing_truncate(fd: int, length: int) -> None:
        if fd == hot_fd and state["truncate_fails"]:
            state["truncate_fails"] = False
            raise OSError(errno.EIO, "Input/output error")
        truncate(fd, length)

    monkeypatch.setattr(writer_module.os, "write", failing_write)
    monkeypatch.setattr(writer_module.os, "ftruncate", failing_truncate)
    for i in range(10, 20):
        log.append(event(i))
    log.flush()  # 11..15 land, the write fails, the cut-back fails: the rest is spilled
    assert log.stats()["spilled"] == 5
    monkeypatch.setattr(writer_module.os, "write", write)
    monkeypatch.setattr(writer_module.os, "ftruncate", truncate)
    time.sleep(1.1)  # past the retry interval of a store that failed
    log.close()
    assert log.stats()["spill_pending"] == 0
    assert _distinct(store) == (20, 20)
    report = verify(store)
    assert report.ok, report.first


def test_rows_adopted_before_another_orphan_fails_are_checked_against_the_store(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Found in review: when one orphan's rows could not be moved (the spill disk full),
    the rows of those adopted before it, maybe stored already by their dead writer, were
    loaded back unchecked: stored twice."""
    from guard.audit import spill

    store = _killed_while_reloading(tmp_path / "s")
    directory = store / "spill"
    (orphan,) = [p for p in directory.glob("*.jsonl") if p.stat().st_size]
    # a second dead writer's file, listed after the first
    shutil.copyfile(orphan, directory / "zzzz-second-writer.jsonl")
    (directory / "zzzz-second-writer.lock").touch()
    write, calls = spill.SpillFile.write, [0]

    def second_fails(self: Any, rows: list[tuple[str, str]], *, fsync: bool) -> None:
        calls[0] += 1
        if calls[0] == 2:  # the disk fills up while the second orphan is moved
            raise OSError(errno.ENOSPC, "No space left on device")
        write(self, rows, fsync=fsync)

    monkeypatch.setattr(spill.SpillFile, "write", second_fails)
    heir = AuditLog(store)
    heir.close()
    assert _distinct(store) == (30, 30)
    assert verify(store).ok
