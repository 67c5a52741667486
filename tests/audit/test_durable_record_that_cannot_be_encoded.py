"""Durable mode: a decision whose record the writer cannot encode will never be on disk.
Found in review: its waiter was not told, so `wait_durable` sat out its whole timeout
(the middleware's 10 s) before the call was denied; it now learns it at once, and the
record is still counted (`append_errors`)."""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path

import pytest
from audit_kit import boom_cannot_be_encoded, event
from fastmcp import Client
from fastmcp.exceptions import ToolError

from guard import GuardMiddleware, Principal
from guard.audit import AuditLog, open_store

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "middleware"))
from mw_support import POLICY, demo_server


@pytest.fixture
def unencodable(monkeypatch: pytest.MonkeyPatch) -> None:
    """Records whose arguments hold "boom" cannot be encoded by the writer."""
    boom_cannot_be_encoded(monkeypatch)


@pytest.mark.usefixtures("unencodable")
async def test_a_waiter_learns_at_once_that_its_record_cannot_be_encoded(tmp_path: Path) -> None:
    log = AuditLog(tmp_path / "s", durable=True, flush_interval=60)
    bad, good = event(1, args={"text": "boom"}), event(2)
    assert log.append(bad) and log.append(good)  # queued: the writer finds out later
    t0 = time.monotonic()
    results = await asyncio.gather(
        log.wait_durable(bad.decision_id, timeout=30),
        log.wait_durable(good.decision_id, timeout=30),
    )
    assert results == [False, True]
    assert time.monotonic() - t0 < 5
    assert log.stats()["append_errors"] == 1  # counted, not hidden
    # asked again, it is still not durable (not mistaken for one written long ago)
    assert not await log.wait_durable(bad.decision_id, timeout=30)
    log.close()


@pytest.mark.usefixtures("unencodable")
async def test_a_waiter_that_asks_after_the_writer_failed_is_told_too(tmp_path: Path) -> None:
    log = AuditLog(tmp_path / "s", durable=True, flush_interval=60)
    bad = event(1, args={"text": "boom"})
    assert log.append(bad)
    deadline = time.monotonic() + 10
    while not log.stats()["append_errors"] and time.monotonic() < deadline:
        await asyncio.sleep(0.01)  # the writer failed before anyone waited
    assert log.stats()["append_errors"] == 1
    assert not await log.wait_durable(bad.decision_id, timeout=30)
    log.close()


@pytest.mark.usefixtures("unencodable")
async def test_a_durable_call_whose_record_cannot_be_encoded_is_denied_at_once(
    tmp_path: Path,
) -> None:
    store = tmp_path / "audit"
    audit = AuditLog(store, durable=True)
    mw = GuardMiddleware(POLICY, principal=Principal("root", ("admin",)), audit=audit,
                         telemetry=False)  # fmt: skip
    mcp = demo_server()
    ran: list[str] = []

    @mcp.tool
    def note(text: str) -> str:
        ran.append(text)
        return text

    mcp.add_middleware(mw)
    async with Client(mcp) as client:
        t0 = time.monotonic()
        with pytest.raises(ToolError):
            await client.call_tool("note", {"text": "boom"})
        assert time.monotonic() - t0 < 5  # not after the 10 s durable timeout
        assert (await client.call_tool("note", {"text": "fine"})).data == "fine"
    mw.close()
    assert ran == ["fine"]
    assert audit.stats()["append_errors"] == 1
    with open_store(store) as db:
        assert db.sql(
            "SELECT args, status FROM decision_log WHERE method = 'tools/call'"
        ).fetchall() == [('{"text":"fine"}', "ok")]
