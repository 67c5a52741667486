"""Durable mode: records that will never be on disk, around `close()`, are said so at once.

`close()` gives up on a writer stuck in a write and spills what it holds;
when the spill directory refuses them too, those records are lost (counted). Found in
review: their waiters were not told, and sat out their timeout (the middleware's 10 s)
before the calls were denied; they now learn it as soon as `close()` does."""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path

from audit_kit import event, spill_dir_gone

from guard.audit import AuditLog


async def test_waiters_learn_at_close_that_their_records_were_lost(tmp_path: Path) -> None:
    disk_back = threading.Event()

    def hung_disk(table: str, rows: int) -> None:
        if table == "decisions":
            disk_back.wait(30)

    log = AuditLog(tmp_path / "s", durable=True, write_hook=hung_disk, flush_interval=3600)
    events = [event(i) for i in range(4)]
    log.append(events[0])
    await asyncio.sleep(0.3)  # the writer is stuck writing it
    for ev in events[1:]:
        log.append(ev)  # queued behind it
    waits = [asyncio.ensure_future(log.wait_durable(ev.decision_id, timeout=30)) for ev in events]
    await asyncio.sleep(0.1)
    spill_dir_gone(log)
    t0 = time.monotonic()
    try:
        await asyncio.to_thread(log.close, 0.5)
        assert log.stats()["lost"] == 4
        assert await asyncio.gather(*waits) == [False] * 4
        assert time.monotonic() - t0 < 5  # at close, not at the waiters' timeout
    finally:
        disk_back.set()


async def test_a_record_append_could_not_keep_is_not_left_pending(tmp_path: Path) -> None:
    """After `close()`, `append` spills on the request path; when the spill directory
    refuses it, `append` fails (the call is denied). Its id was left pending for good: a
    wait on it sat out its timeout, and every such call of an outage stayed in memory."""
    log = AuditLog(tmp_path / "s", durable=True)
    log.close()
    spill_dir_gone(log)
    late = event(1)
    assert not log.append(late)
    t0 = time.monotonic()
    assert not await log.wait_durable(late.decision_id, timeout=30)
    assert time.monotonic() - t0 < 5
    assert not log._pending and not log._waiters
