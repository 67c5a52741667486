"""`close()` spills what a writer stuck in a write holds and what is still queued. Found in
review: one queued record that could not be encoded made that whole spill fail, so every
leftover record was counted lost ("neither the store nor the spill file took them", though
the spill file was fine) and, in durable mode, every waiter was refused. That record is
now counted and left out, as the writer thread does, and the others are spilled."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import pytest
from audit_kit import boom_cannot_be_encoded, event

from guard.audit import AuditLog, open_store


async def test_one_unencodable_leftover_does_not_lose_the_others_at_close(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    boom_cannot_be_encoded(monkeypatch)
    disk_back = threading.Event()

    def hung_disk(table: str, rows: int) -> None:
        if table == "decisions":
            disk_back.wait(30)

    store = tmp_path / "s"
    log = AuditLog(store, durable=True, write_hook=hung_disk, flush_interval=3600)
    events = [event(0), event(1), event(2, args={"text": "boom"}), event(3)]
    log.append(events[0])
    await asyncio.sleep(0.3)  # the writer is stuck writing it
    for ev in events[1:]:
        log.append(ev)  # queued behind it
    waits = [asyncio.ensure_future(log.wait_durable(ev.decision_id, timeout=5)) for ev in events]
    await asyncio.sleep(0.1)
    try:
        await asyncio.to_thread(log.close, 0.5)
        stats = log.stats()
        assert (stats["lost"], stats["spilled"], stats["append_errors"]) == (0, 3, 1)
        assert await asyncio.gather(*waits) == [True, True, False, True]
    finally:
        disk_back.set()
    monkeypatch.undo()  # the writer encodes every record again
    await asyncio.sleep(0.5)  # the stuck write lands, and its writer loads the spill back
    AuditLog(store).close()  # (or the next writer adopts it)
    with open_store(store) as db:
        stored = sorted(i for (i,) in db.sql("SELECT decision_id FROM decisions").fetchall())
    assert stored == sorted(events[i].decision_id for i in (0, 1, 3))  # each once
