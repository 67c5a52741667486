"""Durable mode: a call whose caller cancels it while the guard waits for its decision
record to reach the disk never runs. Found in review: its record said "allowed" and no
outcome followed, which reads exactly like a server that crashed mid-call; the outcome
now says the call did not run, as for a record that did not reach the disk in time."""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path

import pytest
from fastmcp import Client
from mw_support import POLICY, demo_server

from guard import GuardMiddleware, Principal
from guard.audit import AuditLog, open_store, verify

ALICE = Principal("alice", roles=("user",))


async def test_a_call_cancelled_during_its_durable_wait_has_an_outcome_that_says_it_did_not_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import guard._deciding as deciding_module

    monkeypatch.setattr(deciding_module, "_DURABLE_TIMEOUT_S", 30.0)  # cancelled first
    disk_back = threading.Event()

    def slow_disk(table: str, rows: int) -> None:
        if table == "decisions":
            disk_back.wait(30)

    store = tmp_path / "audit"
    audit = AuditLog(store, durable=True, write_hook=slow_disk)
    mw = GuardMiddleware(POLICY, principal=ALICE, audit=audit, telemetry=False)
    mcp = demo_server()
    ran: list[str] = []

    @mcp.tool(tags={"safe"})
    def transfer(amount: int) -> str:
        ran.append("transfer")
        return "done"

    outcome = threading.Event()
    append_outcome = audit.append_outcome

    def outcome_queued(*args: object) -> None:
        append_outcome(*args)  # type: ignore[arg-type]
        outcome.set()

    monkeypatch.setattr(audit, "append_outcome", outcome_queued)
    mcp.add_middleware(mw)
    async with Client(mcp) as client:
        call = asyncio.create_task(client.call_tool("transfer", {"amount": 5}))
        deadline = time.monotonic() + 10
        while not audit._waiters and time.monotonic() < deadline:  # the guard waits now
            await asyncio.sleep(0.01)
        assert audit._waiters
        call.cancel()
        with pytest.raises(asyncio.CancelledError):
            await call
        # the server side let go (before the fix: no outcome, ever)
        await asyncio.to_thread(outcome.wait, 5)
        disk_back.set()
    mw.close()
    assert ran == []
    with open_store(store) as db:
        assert db.sql(
            "SELECT allowed, status, error_class FROM decision_log WHERE resource = 'transfer'"
        ).fetchall() == [(True, "error", "CancelledBeforeRun")]
    assert verify(store).ok
