"""Item sets go with the last row naming them: retention (and compaction) deletes the sets no
remaining row names (segments, hot files, spilled rows) and no writer has claimed for a day,
and a writer naming a set again after that files it again."""

from __future__ import annotations

import fcntl
import os
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from audit_kit import event, run_script
from click.testing import CliRunner

from guard.audit import AuditLog, _writing, apply_retention, compact, open_store, verify
from guard.audit import itemsets as itemsets_module
from guard.audit.segments import scan_segments
from guard.cli import main
from guard.policy.model import Resource

FUTURE = datetime.now(UTC) + timedelta(days=400)  # every row written here is old then


def _list(log: AuditLog, listing_id: str, names: str) -> None:
    """Queue a listing of the tools `names` (one letter each): its item set is theirs."""
    events = []
    for n, name in enumerate(names, 1):
        ev = event(n, resource=Resource("tool", name), method="tools/list", action="list")
        ev.decision_id = f"{listing_id}.{n}"
        events.append(ev)
    log.append_listing(listing_id, events)


def _sets(store: Path) -> set[str]:
    return {p.stem for p in (store / "itemsets").glob("*.jsonl")}


def _age(store: Path, days: float = 2) -> None:
    """Make every item set look untouched for `days`, as if that long had passed."""
    then = time.time() - days * 86_400
    for path in (store / "itemsets").glob("*.jsonl"):
        os.utime(path, (then, then))


def _named(store: Path, listing_id: str) -> str:
    with open_store(store) as con:
        row = con.execute(
            "SELECT items_sha256 FROM listings WHERE decision_id = ?", [listing_id]
        ).fetchone()
    assert row is not None and row[0] is not None
    return str(row[0])


def _components(store: Path, listing_id: str) -> list[tuple[str, str]]:
    with open_store(store) as con:
        return [
            (str(d), str(r))
            for d, r in con.execute(
                "SELECT decision_id, resource FROM decisions WHERE decision_id LIKE ? "
                "ORDER BY decision_id",
                [f"{listing_id}.%"],
            ).fetchall()
        ]


def _ts(store: Path, listing_id: str) -> datetime:
    with open_store(store) as con:
        row = con.execute("SELECT ts FROM listings WHERE decision_id = ?", [listing_id]).fetchone()
    assert row is not None
    return row[0]  # type: ignore[no-any-return]


def _verified(store: Path) -> None:
    report = verify(store)
    assert report.ok, [str(p) for p in report.problems]


def _converted(store: Path, timeout: float = 10) -> None:
    """Wait until no listings hot file is left to read (the writer converted them; a
    converted one stays a while beside its segment, skipped)."""
    deadline = time.monotonic() + timeout
    while scan_segments(store / "listings")[1] and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not scan_segments(store / "listings")[1]


def test_retention_deletes_a_set_only_dropped_rows_named(tmp_path: Path) -> None:
    store = tmp_path / "s"
    log = AuditLog(store, flush_interval=3600)
    _list(log, "L0", "ab")
    log.flush()
    time.sleep(0.01)
    _list(log, "L1", "c")
    log.close()  # one segment: L0 (set of a, b) then L1 (set of c)
    dropped_set, kept_set = _named(store, "L0"), _named(store, "L1")
    assert _sets(store) == {dropped_set, kept_set}
    _age(store)
    result = apply_retention(store, days=180, now=_ts(store, "L1") + timedelta(days=180))
    assert result == {"decisions": 0, "outcomes": 0, "listings": 1, "itemsets": 1}
    assert _sets(store) == {kept_set}  # still named by L1, in the segment retention wrote
    assert _components(store, "L1") == [("L1.1", "c")]
    assert _components(store, "L0") == []
    _verified(store)
    # nothing left to delete: a second run deletes nothing
    assert apply_retention(store, days=180, now=_ts(store, "L1") + timedelta(days=180)) == {
        "decisions": 0,
        "outcomes": 0,
        "listings": 0,
        "itemsets": 0,
    }


def test_a_set_a_live_writers_hot_file_names_is_kept(tmp_path: Path) -> None:
    store = tmp_path / "s"
    old = AuditLog(store, flush_interval=3600)
    _list(old, "L0", "ab")
    old.close()
    live = AuditLog(store, flush_interval=3600)  # its rows stay in its hot file (30 s)
    _list(live, "L1", "ab")
    live.flush()
    assert list((store / "listings").glob("*.jsonl"))
    (shared,) = _sets(store)
    _age(store)
    result = apply_retention(store, days=180, now=FUTURE)
    assert result["listings"] == 1 and result["itemsets"] == 0  # L0 went, L1 is hot
    assert _sets(store) == {shared}
    assert _components(store, "L1") == [("L1.1", "a"), ("L1.2", "b")]
    _verified(store)
    live.close()
    _verified(store)


def test_an_unnamed_set_younger_than_the_grace_is_kept(tmp_path: Path) -> None:
    """A set no row names may be named again any moment by a writer that claimed it a
    moment ago: it goes only once nobody has claimed it for the grace period."""
    store = tmp_path / "s"
    log = AuditLog(store, flush_interval=3600)
    _list(log, "L0", "ab")
    log.close()
    (filed,) = _sets(store)
    result = apply_retention(store, days=180, now=FUTURE)
    assert result["listings"] == 1 and result["itemsets"] == 0
    assert _sets(store) == {filed}
    _age(store, days=itemsets_module.GRACE_SECONDS / 86_400 - 0.01)  # not quite old enough
    assert apply_retention(store, days=180, now=FUTURE)["itemsets"] == 0
    _age(store)  # a later run, once the set is old, deletes it (no row dropped this time)
    out = CliRunner().invoke(main, ["retention", str(store)])
    assert out.exit_code == 0, out.output
    assert "itemsets: 1 item set(s) no row names any more deleted" in out.output
    assert _sets(store) == set()
    _verified(store)


def test_compaction_deletes_the_sets_retention_had_to_keep(tmp_path: Path) -> None:
    """A set no row names any more is kept for a day after its last claim, so the retention
    run that dropped its rows leaves it. Found in review: only retention swept the sets, so
    a store compacted daily but cut by retention rarely (or once, by hand) kept them until
    retention ran again; compaction sweeps them as well, as safely."""
    store = tmp_path / "s"
    log = AuditLog(store, flush_interval=3600)
    _list(log, "L0", "ab")
    log.flush()
    time.sleep(0.01)
    _list(log, "L1", "c")
    log.close()
    dropped_set, kept_set = _named(store, "L0"), _named(store, "L1")
    result = apply_retention(store, days=180, now=_ts(store, "L1") + timedelta(days=180))
    assert result["listings"] == 1 and result["itemsets"] == 0  # claimed a moment ago
    assert _sets(store) == {dropped_set, kept_set}
    _age(store)  # a day later
    out = CliRunner().invoke(main, ["compact", str(store)])
    assert out.exit_code == 0, out.output
    assert _sets(store) == {kept_set}  # still named by L1
    assert "itemsets: 1 item set(s) no row names any more deleted" in out.output
    assert compact(store) == {"decisions": 0, "outcomes": 0, "listings": 1, "itemsets": 0}
    assert _components(store, "L1") == [("L1.1", "c")]
    _verified(store)


@pytest.mark.parametrize("maintain", [compact, apply_retention])
def test_a_set_a_live_writers_hot_file_names_is_kept_by_either_sweep(
    tmp_path: Path, maintain: Any
) -> None:
    """Compaction sweeps as retention does: a set only a live writer's hot file names stays."""
    store = tmp_path / "s"
    live = AuditLog(store, flush_interval=3600)  # its rows stay in its hot file (30 s)
    _list(live, "L0", "ab")
    live.flush()
    (named,) = _sets(store)
    _age(store)
    assert maintain(store)["itemsets"] == 0
    assert _sets(store) == {named}
    live.close()
    _verified(store)
    assert _components(store, "L0") == [("L0.1", "a"), ("L0.2", "b")]


def test_a_live_writer_files_a_deleted_set_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A writer remembers the sets it filed; once its claim on one runs out, it claims it
    on disk again before naming it, and files it again when retention deleted it."""
    monkeypatch.setattr(_writing, "CLAIM_SECONDS", 0.0)  # as if a minute had passed
    store = tmp_path / "s"
    log = AuditLog(store, flush_interval=3600, segment_rows=1)
    _list(log, "L0", "ab")
    log.flush()
    _converted(store)
    _age(store)
    assert apply_retention(store, days=180, now=FUTURE)["itemsets"] == 1
    assert _sets(store) == set()
    _list(log, "L1", "ab")  # the same answers: the same set, which this writer filed
    log.flush()
    _verified(store)
    assert _components(store, "L1") == [("L1.1", "a"), ("L1.2", "b")]
    log.close()
    _verified(store)
    assert _components(store, "L1") == [("L1.1", "a"), ("L1.2", "b")]


def test_a_set_named_while_retention_looks_for_names_is_kept(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A writer may name a set right after retention read the files naming it (and before
    it deletes the set): the writer's claim made the set new again, so it stays."""
    monkeypatch.setattr(_writing, "CLAIM_SECONDS", 0.0)
    store = tmp_path / "s"
    log = AuditLog(store, flush_interval=3600, segment_rows=1)
    _list(log, "L0", "ab")
    log.flush()
    _converted(store)
    _age(store)
    real = itemsets_module.named_sets

    def then_a_writer_names_it(*args: Any) -> set[str]:
        named = real(*args)
        _list(log, "L1", "ab")
        log.flush()
        return named

    monkeypatch.setattr(itemsets_module, "named_sets", then_a_writer_names_it)
    assert apply_retention(store, days=180, now=FUTURE)["itemsets"] == 0
    _verified(store)
    assert _components(store, "L1") == [("L1.1", "a"), ("L1.2", "b")]
    log.close()
    _verified(store)


def test_a_set_a_writer_is_claiming_is_kept(tmp_path: Path) -> None:
    """A writer claims a set under a shared lock on it: retention deletes a set only under
    an exclusive one, so a claim and a deletion never interleave."""
    store = tmp_path / "s"
    log = AuditLog(store, flush_interval=3600)
    _list(log, "L0", "ab")
    log.close()
    _age(store)
    (path,) = (store / "itemsets").glob("*.jsonl")
    fd = os.open(path, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH)  # a writer between its lock and its touch
        assert apply_retention(store, days=180, now=FUTURE)["itemsets"] == 0
    finally:
        os.close(fd)
    assert path.exists()
    assert apply_retention(store, days=180, now=FUTURE)["itemsets"] == 1


def test_a_set_spilled_rows_name_is_kept(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Rows waiting in the spill file name their sets too: they are loaded back later."""
    store = tmp_path / "s"
    refusing = [True]

    def hook(table: str, rows: int) -> None:
        if table == "listings" and refusing[0]:
            raise OSError("store refuses listings")

    log = AuditLog(store, flush_interval=3600, write_hook=hook)
    _list(log, "L0", "ab")
    log.flush()
    assert log.stats()["spill_pending"] == 1
    _age(store)
    assert apply_retention(store, days=180, now=FUTURE)["itemsets"] == 0
    refusing[0] = False
    deadline = time.monotonic() + 10
    while log.stats()["spill_pending"] and time.monotonic() < deadline:
        log.flush()  # loads the spilled row back (retried each second while failing)
        time.sleep(0.05)
    assert log.stats()["spill_pending"] == 0
    log.close()
    _verified(store)
    assert _components(store, "L0") == [("L0.1", "a"), ("L0.2", "b")]


def test_a_set_named_by_rows_adopted_while_retention_reads_the_spill_is_kept(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A writer that starts adopts a dead writer's spilled rows: it copies them into its own
    spill file, then deletes the dead writer's. Found in review: retention listed the spill
    directory once, so a file it listed and then found gone (adopted meanwhile) hid rows
    that had moved to a file it had not listed; it deleted their set, and the adopter
    stored them naming a set that was gone."""

    script = r"""
import os, sys
from audit_kit import event
from guard.audit import AuditLog
from guard.policy.model import Resource

def hook(table, rows):
    if table == "listings":
        raise OSError("store refuses listings")

log = AuditLog(sys.argv[1], write_hook=hook, flush_interval=3600)
events = []
for n, name in enumerate("ab", 1):
    ev = event(n, resource=Resource("tool", name), method="tools/list", action="list")
    ev.decision_id = f"L0.{n}"
    events.append(ev)
log.append_listing("L0", events)
log.flush(10)
assert log.stats()["spill_pending"] == 1
os._exit(0)  # dies: its spilled listing waits for the next writer
"""
    store = tmp_path / "s"
    run_script(script, str(store), timeout=60)
    (orphan,) = (store / "spill").glob("*.jsonl")
    (named,) = _sets(store)
    _age(store)  # the writer died long ago
    heirs: list[AuditLog] = []
    starting = [False]
    real_read = itemsets_module.named_in_file

    def read(path: Path) -> set[str]:
        if path == orphan and not starting[0]:  # retention listed it; a writer starts now
            starting[0] = True
            heirs.append(AuditLog(store, flush_interval=3600))
            assert not orphan.exists()  # adopted: its rows are in the heir's file
        return real_read(path)

    monkeypatch.setattr(itemsets_module, "named_in_file", read)
    result = apply_retention(store, days=180, now=FUTURE)
    monkeypatch.setattr(itemsets_module, "named_in_file", real_read)
    assert heirs
    heirs[0].close()  # loads the adopted listing back
    assert result["itemsets"] == 0
    assert _sets(store) == {named}
    assert _components(store, "L0") == [("L0.1", "a"), ("L0.2", "b")]
    _verified(store)


def test_a_claim_that_may_wait_waits_a_bounded_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Spilled listings claim their sets waiting for a sweep deciding on one; a sweep
    stopped while it holds its lock (SIGSTOP, a hung disk) must not hold the writer
    thread forever (found in review): the claim gives up, and the set is named anyway."""
    monkeypatch.setattr(itemsets_module, "_CLAIM_WAIT_SECONDS", 0.3)
    target = tmp_path / f"{'a' * 64}.jsonl"
    target.write_bytes(b"{}\n")
    fd = os.open(target, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # a sweep between its lock and its delete
        result: list[bool | None] = []
        worker = threading.Thread(
            target=lambda: result.append(itemsets_module.claim(target, wait=True))
        )
        started = time.monotonic()
        worker.start()
        worker.join(10)
        assert not worker.is_alive() and result == [None]
        assert 0.25 < time.monotonic() - started < 5
    finally:
        os.close(fd)
    assert itemsets_module.claim(target, wait=True) is True  # the sweep is gone: claimed


def test_a_writer_that_slept_claims_its_sets_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A writer times its claims on a clock that goes on while the machine sleeps: after a
    suspend longer than its claims last, it claims a set on disk again before naming it
    (a monotonic clock stands still meanwhile, and the set may have aged past the grace)."""
    store = tmp_path / "s"
    log = AuditLog(store, flush_interval=3600)
    _list(log, "L0", "ab")
    log.flush()
    _age(store)  # a day went by, the machine asleep
    (path,) = (store / "itemsets").glob("*.jsonl")
    woke = itemsets_module.claim_clock() + 86_400
    monkeypatch.setattr(_writing, "claim_clock", lambda: woke)
    _list(log, "L1", "ab")
    log.flush()
    assert time.time() - path.stat().st_mtime < 60  # claimed again: retention keeps it
    log.close()
    _verified(store)


@pytest.mark.parametrize("chunk", [1, 7, 81, 82, 200, 4096])
def test_retention_reads_spill_files_a_chunk_at_a_time_and_misses_no_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, chunk: int
) -> None:
    """A spill file after a long outage can hold gigabytes: retention reads it in chunks,
    and a set's name cut by a chunk's end is still found."""
    import hashlib
    import json

    digests = [hashlib.sha256(str(n).encode()).hexdigest() for n in range(40)]
    # as spill lines hold listing rows: the body is a JSON string (quotes escaped)
    lines = [
        json.dumps({"t": "listings", "b": f'{{"decision_id":"L{n}","items_sha256":"{d}"'})
        for n, d in enumerate(digests)
    ]
    path = tmp_path / "spill.jsonl"
    path.write_text("\n".join(lines) + "\n")
    monkeypatch.setattr(itemsets_module, "_CHUNK", chunk)
    assert itemsets_module.named_in_file(path) == set(digests)
    assert itemsets_module.named_in(path.read_bytes()) == set(digests)
