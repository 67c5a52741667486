"""The audit queue's bound (`max_queue`) counted records, not what they hold: a queued
decision keeps its recorded arguments until written, and redaction caps each value (4,096
characters), not their sum. A caller sending big arguments (many values under the cap;
4 MiB a request over HTTP, anything in process) faster than the writer stores them grew
the queue by megabytes a request: 20 callers of 1 MB calls took a guarded server past
8 GB, each record far below 200,000. A decision now counts once per `QUEUE_CHARS`
characters its arguments hold, so the queue spills to disk at the same bound in memory
whatever the records carry; nothing is lost."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from audit_kit import HangingDisk, adopted_decisions
from fastmcp import Client, FastMCP

from guard import GuardMiddleware, Principal
from guard.audit import AuditLog
from guard.audit.redact import Redactor
from guard.audit.rows import DECISION, QUEUE_CHARS

POLICY = """
name: p
default_effect: allow
rules: []
"""
MAX_QUEUE = 1000
CALLS = 40
# 64 values of 4,004 characters, each under the redactor's cap: 256 KB a call, 10 MB in all
BIG = {"blob": {f"part{i:02d}": f"{i:04d}" + "x" * 4000 for i in range(64)}}


def _queued_argument_chars(log: AuditLog) -> int:
    return sum(len(json.dumps(item[8])) for item in list(log._queue) if item[0] == DECISION)


async def test_queued_decisions_hold_a_bounded_number_of_argument_characters(
    tmp_path: Path,
) -> None:
    store = tmp_path / "store"
    disk = HangingDisk()
    disk.mode = "hang"  # the writer is slower than the callers: here, stuck
    log = AuditLog(store, max_queue=MAX_QUEUE, write_hook=disk, flush_interval=0.05)
    mw = GuardMiddleware(POLICY, principal=Principal("alice", ("user",)), audit=log,
                         telemetry=False)  # fmt: skip
    mcp = FastMCP("big-arguments")

    @mcp.tool
    def echo(blob: dict[str, str]) -> int:
        return len(blob)

    mcp.add_middleware(mw)
    try:
        async with Client(mcp) as client:
            for _ in range(CALLS):
                assert (await client.call_tool("echo", BIG)).data == 64
            held = _queued_argument_chars(log)
    finally:
        disk.release.set()
        mw.close()
    # all 40 calls (10 MB) were queued in memory: records were counted, not their size
    assert held <= MAX_QUEUE * QUEUE_CHARS, held
    assert log.stats()["spilled"] > 0  # the rest waited on disk ...
    calls = [i for i in adopted_decisions(store) if "." not in i]  # (not listed components)
    assert len(calls) == CALLS  # ... and every call's decision is stored once


def test_measured_counts_what_the_recorded_arguments_hold() -> None:
    r = Redactor()
    small = {"city": "Paris", "days": 3}
    assert r.measured(small)[:2] == r.redact(small)
    assert r.measured(small)[2] < QUEUE_CHARS
    assert r.measured({})[2] == 0
    big = BIG["blob"]
    assert r.measured(big)[2] >= len(json.dumps(big))
    long_keys = {"k" * 4000 + str(i): 1 for i in range(64)}  # never remembered: weighed
    assert r.measured(long_keys)[2] >= 64 * 4000
    many = {"xs": list(range(10_000))}
    assert r.measured(many)[2] >= len(json.dumps(many))
    oversized = {"doc": "y" * 1_000_000}  # recorded as a marker: holds little
    assert r.measured(oversized)[2] < QUEUE_CHARS


def test_a_redactor_that_redacts_its_own_way_is_still_the_one_recording(tmp_path: Path) -> None:
    """`append` weighs arguments with `Redactor.measured`; a subclass overriding `redact`
    (its own secrets to take out) is not bypassed by it: its records count once each."""
    from audit_kit import event, stored_decisions

    from guard.audit import open_store

    class NoCities(Redactor):
        def redact(self, args: Any) -> Any:
            return {k: "<mine>" if k == "city" else v for k, v in (args or {}).items()}, ("city",)

    store = tmp_path / "store"
    log = AuditLog(store, redactor=NoCities())
    log.append(event(1, args={"city": "Paris"}))
    log.close()
    assert len(stored_decisions(store)) == 1
    with open_store(store) as con:
        assert con.execute("SELECT args FROM decisions").fetchone()[0] == '{"city":"<mine>"}'


def test_a_backlog_of_heavy_decisions_is_written_in_bounded_pieces(tmp_path: Path) -> None:
    """A flush takes up to `WRITE_MAX_ROWS` records at a time; heavy decisions end a write
    sooner, at about `WRITE_MAX_CHARS` of arguments (as big listings already did), so one
    write never encodes and holds a backlog of 5,000 heavy records (gigabytes) at once."""
    from audit_kit import event, stored_decisions

    from guard.audit._writing import WRITE_MAX_CHARS

    writes: list[int] = []
    log = AuditLog(
        tmp_path / "store",
        batch_size=100_000,  # nothing wakes the writer before close: one backlog
        flush_interval=3600,
        max_queue=100_000,
        write_hook=lambda table, rows: writes.append(rows) if table == "decisions" else None,
    )
    heavy = 60  # 256 KB each: 15 MB of arguments
    for i in range(heavy):
        log.append(event(i, args=BIG))
    log.close()
    assert sum(writes) == heavy and len(stored_decisions(tmp_path / "store")) == heavy
    per_write = WRITE_MAX_CHARS // (64 * 4004) + 1
    assert max(writes) <= per_write, writes
