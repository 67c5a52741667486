"""Lines that cannot be loaded back are set aside in `<spill>.rejected` before the spill
file is cut back without them. Found in review: when that failed (or the process died
before it), the next load-back set the same lines aside again, so `.rejected` held
them twice and `spill_rejected` counted them twice."""

from __future__ import annotations

import errno
import time
from pathlib import Path
from typing import Any

import pytest
from audit_kit import event

from guard.audit import AuditLog, open_store, spill, verify

GARBAGE = b'{"t":"decisions","b":"{\\"ts\\":1"}'  # a row without its decision id


def test_a_line_is_set_aside_once_when_the_spill_cut_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    failing = {"store": True, "cuts": 0}

    def hook(table: str, rows: int) -> None:
        if failing["store"]:
            raise OSError(errno.ENOSPC, "No space left on device")

    cut = spill.SpillFile.cut

    def flaky(self: Any, start: int, lines: int) -> None:
        if failing["cuts"] > 0:
            failing["cuts"] -= 1
            raise OSError(errno.ENOSPC, "No space left on device")
        cut(self, start, lines)

    monkeypatch.setattr(spill.SpillFile, "cut", flaky)
    store = tmp_path / "s"
    log = AuditLog(store, write_hook=hook, flush_interval=3600)
    for i in range(10):
        log.append(event(i))
    assert log.flush(10)
    with open(log._spill.path, "ab") as fh:  # a line no load-back can take
        fh.write(GARBAGE + b"\n")
    failing.update(store=False, cuts=2)
    time.sleep(1.1)  # past the retry interval of a store that failed
    assert log.flush(10)  # loaded back, the line set aside; the cut fails
    assert log.flush(10)  # again
    log.close()
    (rejected,) = (store / "spill").glob("*.rejected")
    assert rejected.read_bytes().splitlines() == [GARBAGE]
    assert log.stats()["spill_rejected"] == 1
    with open_store(store) as con:
        total, distinct = con.execute(
            "SELECT count(*), count(DISTINCT decision_id) FROM decisions"
        ).fetchone()
    assert (total, distinct) == (10, 10) and verify(store).ok


def test_an_orphan_adopted_again_after_a_crash_sets_its_lines_aside_once(
    tmp_path: Path,
) -> None:
    """A writer that adopted a dead writer's file and died before deleting it: the next
    one adopts the same file, and its unreadable lines, again."""

    def always_fail(table: str, rows: int) -> None:
        raise OSError(errno.EIO, "I/O error")

    store = tmp_path / "s"
    dead = AuditLog(store, write_hook=always_fail)
    for i in range(3):
        dead.append(event(i))
    dead.close()
    (orphan,) = (store / "spill").glob("*.jsonl")
    with open(orphan, "ab") as fh:
        fh.write(GARBAGE + b"\n")
    content = orphan.read_bytes()
    first = AuditLog(store)  # adopts it: the line set aside
    first.close()
    orphan.write_bytes(content)  # as if `first` had died before deleting the orphan
    orphan.with_suffix(".lock").touch()
    second = AuditLog(store)
    second.close()
    (rejected,) = (store / "spill").glob("*.rejected")
    assert rejected.read_bytes().splitlines() == [GARBAGE]
    assert second.stats()["spill_rejected"] == 0
