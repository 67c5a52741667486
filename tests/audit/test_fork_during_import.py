"""A process forked while the parent's converter could be importing DuckDB finishes its own
conversions and exits: the import happens when the log is made, not on a thread."""

from __future__ import annotations

import subprocess
import textwrap
from pathlib import Path

from audit_kit import PYTHON, subprocess_env

SCRIPT = textwrap.dedent(
    """
    import importlib.abc, os, sys, threading, time

    entered = threading.Event()

    class SlowImport(importlib.abc.MetaPathFinder):
        # widens the real window (the converter's lazy `import duckdb`, ~50 ms-1 s under
        # load) to make the test deterministic; it changes nothing else
        def find_spec(self, name, path=None, target=None):
            if name == "duckdb":
                entered.set()
                time.sleep(1.0)
            return None

    sys.meta_path.insert(0, SlowImport())
    from audit_kit import event
    from guard.audit import AuditLog

    assert "duckdb" not in sys.modules
    log = AuditLog(sys.argv[1], segment_age=0.05, flush_interval=0.05)
    log.append(event(0))
    assert entered.wait(10)  # the converter thread is importing duckdb right now
    pid = os.fork()
    if pid == 0:  # a forked worker: appends, then exits normally
        log.append(event(1))
        sys.exit(0)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            print("child exit status", status)
            break
        time.sleep(0.05)
    else:
        os.kill(pid, 9)
        os.waitpid(pid, 0)
        print("child hung at exit")
    log.close()
    """
)


def test_a_child_forked_during_the_parents_first_conversion_exits(tmp_path: Path) -> None:
    out = subprocess.run(
        [PYTHON, "-c", SCRIPT, str(tmp_path / "store")],
        env=subprocess_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.stdout.strip() == "child exit status 0", out.stdout + out.stderr
