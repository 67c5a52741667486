"""An `append` that found the log open, then lost the GIL to `close()` before putting its
record in the queue, put it into a queue nobody would read again: `close()` had already
drained it and spilled nothing. The record reaches the spill file instead (and, through
the next writer, the store)."""

from __future__ import annotations

from collections import deque
from pathlib import Path
from typing import Any

from audit_kit import event

from guard.audit import AuditLog, open_store


class _ClosingFirst(deque[Any]):
    """A queue whose `append` lets `close()` run first, as a thread switch would."""

    log: AuditLog

    def append(self, item: Any) -> None:
        if not self.log._closed:
            self.log.close()
        super().append(item)


def test_a_record_queued_while_the_log_closes_is_spilled_not_lost(tmp_path: Path) -> None:
    store = tmp_path / "store"
    log = AuditLog(store)
    log.append(event(1))
    queue = _ClosingFirst(log._queue)
    queue.log = log
    log._queue = queue
    late = event(2)
    assert log.append(late) is True
    assert log._closed and not log._queue
    assert log.stats()["spilled"] == 1
    log._spill.close()  # (as at process exit: the next writer may adopt it)
    adopter = AuditLog(store)
    adopter.close()
    with open_store(store) as con:
        ids = {row[0] for row in con.execute("SELECT decision_id FROM decisions").fetchall()}
    assert late.decision_id in ids and len(ids) == 2
