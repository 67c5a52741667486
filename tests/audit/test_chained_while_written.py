"""A batch is chained into one of two buffers the writer keeps while the batch before is
still being written from the other (`writer._BUFFER_MAX`): fresh memory for every batch
cost about a page fault a row. A batch must never be laid out in the buffer a write is
still reading, nor outlive its buffer's reuse; here every write waits a while on its
thread, so the next batch is always chained meanwhile."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

from audit_kit import event
from replay_helpers import rows

from guard.audit import AuditLog, verify
from guard.audit import writer as writer_module


def test_rows_chained_while_the_batch_before_is_written_are_stored_intact(
    tmp_path: Path,
) -> None:
    threads: set[str] = set()

    def slow(table: str, n: int) -> None:
        threads.add(threading.current_thread().name)
        time.sleep(0.5)  # the next batch is chained meanwhile

    log = AuditLog(tmp_path / "s", write_hook=slow, flush_interval=3600, max_queue=10**6)
    text = "x" * 100  # ~1.2 KB rows: 5,000 of them (one write) take a write thread (1 MB)
    n = 17_000  # and the buffers the writer keeps (8 MB)
    for i in range(n):
        log.append(event(i, args={"i": i, "text": text}))
    log.flush()
    kept = [len(b) for b in log._writer._buffers]
    log.close()
    assert "mcp-guard-write" in threads  # the big writes did run on their own thread
    report = verify(tmp_path / "s")
    assert report.ok, report
    stored = [json.loads(r["args"]) for r in rows(tmp_path / "s") if r["method"] == "tools/call"]
    assert sorted(a["i"] for a in stored) == list(range(n))
    assert all(a["text"] == text for a in stored)
    assert min(kept) > 1 << 20  # ... from both buffers the writer keeps


def test_a_batch_past_the_kept_size_gets_a_buffer_of_its_own(tmp_path: Path) -> None:
    """A burst of big rows (listings, big arguments) does not leave the writer holding a
    buffer of its size for good."""
    log = AuditLog(tmp_path / "s", flush_interval=3600, max_queue=10**6)
    big = "y" * 3000
    for i in range(5000):  # ~15 MB in one write
        log.append(event(i, args={"i": i, "text": big}))
    log.flush()
    kept = [len(b) for b in log._writer._buffers]
    log.close()
    assert max(kept) <= writer_module._BUFFER_MAX
    assert verify(tmp_path / "s").ok
