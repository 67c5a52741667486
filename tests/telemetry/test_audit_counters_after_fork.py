"""A forked child (a pre-forking server's worker) is a new process to Prometheus: its
audit counters start from what its own writers report, not from what the parent last
reported. Found in review: the collector kept the parent's last reports (and the
largest of old and new), hiding the child's writes until they passed the parent's."""

from __future__ import annotations

import os

from prometheus_client import CollectorRegistry

from guard.telemetry import GuardTelemetry


class _Log:
    def __init__(self) -> None:
        self.written = 50

    def stats(self) -> dict[str, float]:
        return {"queue_depth": 0, "written": self.written}


def test_a_forked_child_counts_from_its_own_writers() -> None:
    registry = CollectorRegistry()
    telemetry = GuardTelemetry(registry=registry)
    log = _Log()
    telemetry.add_audit_source(log.stats)
    assert registry.get_sample_value("mcpguard_audit_rows_written_total") == 50.0
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: its writer restarted its counts
        try:
            log.written = 3
            seen = registry.get_sample_value("mcpguard_audit_rows_written_total")
            os.write(write, repr(seen).encode())
        finally:
            os._exit(0)
    os.close(write)
    _, status = os.waitpid(pid, 0)
    seen = os.read(read, 100).decode()
    os.close(read)
    assert status == 0
    assert seen == "3.0"
    # the parent's counter goes on as before
    assert registry.get_sample_value("mcpguard_audit_rows_written_total") == 50.0
