"""The writer thread meets an error it did not expect (a thread that cannot start, a
callback that raises): the records it held are written, spilled or counted, never silently
dropped, and the writer goes on working."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from audit_kit import append_decisions, boom_cannot_be_encoded, event, stored_decisions

from guard.audit import AuditLog, open_store, verify


def _fail_thread_start_once(monkeypatch: pytest.MonkeyPatch, name: str) -> list[str]:
    """The next thread named `name` cannot start ("can't start new thread": the process
    is at its thread limit); later ones start. Returns the names of those refused."""
    refused: list[str] = []
    real_start = threading.Thread.start

    def start(self: threading.Thread) -> None:
        if self.name == name and not refused:
            refused.append(self.name)
            raise RuntimeError("can't start new thread")
        real_start(self)

    monkeypatch.setattr(threading.Thread, "start", start)
    return refused


def test_a_write_thread_that_cannot_start_loses_no_record(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Found in review: a batch over 1 MiB is written on a thread of its own; when that
    thread could not start, the batch stayed "in flight" unstarted, its rows were neither
    written nor spilled nor counted, and every later flush failed joining it."""
    store = tmp_path / "s"
    log = AuditLog(store, flush_interval=3600)
    big = {"blob": "x" * 4000}  # 400 rows of ~4 KB: one write over 1 MiB
    ids = set()
    for i in range(400):
        ev = event(i, args={**big, "i": i})
        ids.add(ev.decision_id)
        log.append(ev)
    refused = _fail_thread_start_once(monkeypatch, "mcp-guard-write")
    assert log.flush(10)
    assert refused  # the write thread was refused once
    ids |= append_decisions(log, 1000, 10)  # the writer goes on working
    assert log.flush(10)
    _closed_keeping_all(log, ids)


def test_a_converter_thread_that_cannot_start_is_retried(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A hot file full enough to become a segment is converted on a thread of its own; when
    that thread could not start, every later conversion (and with it every flush) failed
    joining it, and the rows of later flushes were lost."""
    store = tmp_path / "s"
    log = AuditLog(store, flush_interval=3600, segment_rows=10)
    refused = _fail_thread_start_once(monkeypatch, "mcp-guard-convert")
    ids = append_decisions(log, 0, 10)
    assert log.flush(10)
    assert refused
    for n in range(3):  # more hot files fill up and are converted
        ids |= append_decisions(log, 100 * (n + 1), 10)
        assert log.flush(10)
    _closed_keeping_all(log, ids)
    assert list((store / "decisions").glob("*.parquet"))


def _closed_keeping_all(log: AuditLog, ids: set[str]) -> None:
    """`log` closes with nothing lost or left spilled: each of `ids` stored once."""
    log.close()
    stats = log.stats()
    assert stats["lost"] == 0 and stats["spill_pending"] == 0
    assert stored_decisions(log.path) == sorted(ids)
    assert verify(log.path).ok


def _outcomes(store: Path) -> list[str]:
    with open_store(store) as con:
        return [i for (i,) in con.execute("SELECT decision_id FROM outcomes").fetchall()]


@pytest.mark.parametrize("durable", [False, True])
@pytest.mark.parametrize("failing", ["decisions", "outcomes"])
def test_records_taken_from_the_queue_survive_an_unexpected_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, durable: bool, failing: str
) -> None:
    """Found in review: an error the writer thread did not expect while it wrote a slice
    of the queue (here handing over one table's rows; in life memory, a thread, a bug)
    lost what it had taken from the queue and not handed over yet, without a count: the
    flush was logged as failed and the records were gone. A record that cannot be
    encoded counts once."""
    boom_cannot_be_encoded(monkeypatch)
    store = tmp_path / "s"
    log = AuditLog(store, flush_interval=3600, durable=durable)
    log.append(event(99, args={"text": "boom"}))
    writer = log._writer
    real_submit = writer.submit
    refused: list[str] = []

    def submit(table: str, bodies: list[str], ids: list[str]) -> None:
        if table == failing and not refused:
            refused.append(table)
            raise MemoryError
        real_submit(table, bodies, ids)

    writer.submit = submit  # type: ignore[method-assign]
    ids = set()
    for i in range(20):
        ev = event(i)
        ids.add(ev.decision_id)
        log.append(ev)
        log.append_outcome(ev.decision_id, "ok", 1.0, None)
    assert log.flush(10)
    assert refused
    more = append_decisions(log, 100, 5)  # the writer goes on working
    assert log.flush(10)
    log.close()
    stats = log.stats()
    assert stats["lost"] == 0 and stats["append_errors"] == 1 and stats["spill_pending"] == 0
    assert stored_decisions(store) == sorted(ids | more)
    assert sorted(_outcomes(store)) == sorted(ids)
    assert verify(store).ok


def test_a_flush_that_failed_says_so(tmp_path: Path) -> None:
    """Found in review: `flush()` returned True after a flush that failed, with records
    still only in memory; it now returns False, and the next flush writes them."""
    store = tmp_path / "s"
    log = AuditLog(store, flush_interval=3600)
    writer = log._writer
    real_submit = writer.submit
    refusals = [2]  # the slice's write, then its retry at the end of the flush

    def submit(table: str, bodies: list[str], ids: list[str]) -> None:
        if refusals[0]:
            refusals[0] -= 1
            raise MemoryError
        real_submit(table, bodies, ids)

    writer.submit = submit  # type: ignore[method-assign]
    ids = append_decisions(log, 0, 10)
    assert not log.flush(10)  # held in memory: not written
    assert log.stats()["lost"] == 0
    assert log.flush(10)
    assert stored_decisions(store) == sorted(ids)
    log.close()
    assert stored_decisions(store) == sorted(ids) and verify(store).ok
