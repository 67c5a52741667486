"""The SIGTERM handler `_on_sigterm` runs `close()` in the main thread, between
two bytecodes of whatever the main thread was doing. In durable mode the main thread
takes the (non-reentrant) `_durable_lock` in `append` and `wait_durable`; a SIGTERM landing
there makes the writer thread block on that lock (so `close` waits out its timeout), then
`close` itself spills and calls `_resolve_durable`, which takes the lock its own thread
holds: the process never exits on SIGTERM (until SIGKILL)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from audit_kit import PYTHON, subprocess_env

_SCRIPT = r"""
import os, signal, sys, time
from audit_kit import event
from guard.audit import AuditLog

AuditLog.close.__defaults__ = (2.0,)  # the handler's close() waits 2 s, not 30, for the test
def slow(table, rows):  # a write that takes a moment (a group commit's fsync)
    time.sleep(0.3)

log = AuditLog(sys.argv[1], durable=True, write_hook=slow, flush_interval=3600)
log.append(event(0))  # a durable tools/call decision: the writer starts its group commit
with log._durable_lock:  # e.g. the next request's append / wait_durable ...
    os.kill(os.getpid(), signal.SIGTERM)  # ... when the orchestrator stops the server
    time.sleep(5)
print("survived SIGTERM", flush=True)
"""


def test_sigterm_while_the_main_thread_holds_the_durable_lock_still_exits(
    tmp_path: Path,
) -> None:
    proc = subprocess.Popen(
        [PYTHON, "-c", _SCRIPT, str(tmp_path / "s")], env=subprocess_env(),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        pytest.fail("the process hung on SIGTERM (deadlock in close)")
    assert proc.returncode == -15, (proc.returncode, proc.stderr.read())
