"""Records that reach an `AuditLog` after `close()` (a request still finishing while the
server shuts down, a log shared by two guards and closed by one) are spilled on the
request path. Found in review: the closed log took its spill file back for them and kept
it locked until the process ended, so a new `AuditLog` on the same store in that process
(a server rebuilt, a test) could not adopt those rows, nor could another process while
this one lived; and in default mode they were never fsync'd.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from audit_kit import PYTHON, event, fsync_spy, subprocess_env

from guard.audit import AuditLog, open_store, verify


def _stored_ids(store: Path) -> set[str]:
    with open_store(store) as con:
        return {row[0] for row in con.execute("SELECT decision_id FROM decisions").fetchall()}


def test_a_record_after_close_is_adopted_by_the_next_log_in_this_process(tmp_path: Path) -> None:
    store = tmp_path / "store"
    log = AuditLog(store)
    first = event(1)
    log.append(first)
    log.close()
    late = event(2)
    assert log.append(late) is True
    assert log.stats()["spilled"] == 1
    rebuilt = AuditLog(store)  # the same store, the same process: a server rebuilt
    rebuilt.close()
    assert _stored_ids(store) == {first.decision_id, late.decision_id}
    assert verify(store).ok


def test_a_record_after_close_is_on_disk_when_append_returns(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Default mode fsyncs spills at the next flush; a closed log has no next flush."""
    log = AuditLog(tmp_path / "store")
    log.close()
    spill = log._spill.path
    synced = fsync_spy(monkeypatch)
    assert log.append(event(1)) is True
    assert spill.stat().st_ino in synced


def test_a_record_after_close_is_adopted_by_another_process_while_this_one_lives(
    tmp_path: Path,
) -> None:
    store = tmp_path / "store"
    script = (
        "import sys\n"
        "from audit_kit import event\n"
        "from guard.audit import AuditLog\n"
        "log = AuditLog(sys.argv[1])\n"
        "log.close()\n"
        "late = event(7)\n"
        "assert log.append(late)\n"
        "print(late.decision_id, flush=True)\n"
        "sys.stdin.read()  # alive until the test is done\n"
    )
    proc = subprocess.Popen(
        [PYTHON, "-c", script, str(store)], env=subprocess_env(), text=True,
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        late_id = proc.stdout.readline().strip()
        assert late_id, proc.stderr.read() if proc.stderr else ""
        AuditLog(store).close()
        assert _stored_ids(store) == {late_id}
    finally:
        proc.communicate("", timeout=60)
    assert proc.returncode == 0


def test_a_late_record_whose_spill_file_stays_held_is_refused_not_waited_for(
    tmp_path: Path,
) -> None:
    """Only an adopter holds a closed log's spill file, briefly; but a process forked
    during a late write keeps the lock it inherited for its life. The late record is
    refused after a bounded wait (its call denied), and the request path never hangs."""
    import fcntl
    import time

    log = AuditLog(tmp_path / "store")
    log.close()
    assert log.append(event(1)) is True
    fd = os.open(log._spill._lock_path, os.O_RDWR)
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # (as an inherited copy would)
    try:
        started = time.monotonic()
        assert log.append(event(2)) is False
        assert time.monotonic() - started < 5
        assert log.stats()["append_errors"] == 1
    finally:
        os.close(fd)
    late = event(3)
    assert log.append(late) is True
    AuditLog(tmp_path / "store").close()
    assert late.decision_id in _stored_ids(tmp_path / "store")
    assert len(_stored_ids(tmp_path / "store")) == 2
