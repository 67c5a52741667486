"""One `AuditLog` shared by two guards (two servers in one process, one records store)
is added to their telemetry once per guard: the collector summed its stats twice, and
reported every row written, spilled or lost twice (found in review)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry

from guard import GuardMiddleware
from guard.audit import AuditLog
from guard.telemetry import GuardTelemetry


class _Log:
    def stats(self) -> dict[str, float]:
        return {"queue_depth": 2, "written": 5, "lost": 1}


def test_a_source_added_twice_is_counted_once(registry: CollectorRegistry) -> None:
    telemetry = GuardTelemetry(registry=registry)
    log = _Log()
    telemetry.add_audit_source(log.stats)
    telemetry.add_audit_source(log.stats)  # (a new bound method each time: equal, not same)
    get = registry.get_sample_value
    assert get("mcpguard_audit_queue_depth") == 2.0
    assert get("mcpguard_audit_rows_written_total") == 5.0
    assert get("mcpguard_audit_rows_failed_total") == 1.0


def test_two_guards_sharing_one_audit_log_report_it_once(
    tmp_path: Path, registry: CollectorRegistry, make_event: Any
) -> None:
    telemetry = GuardTelemetry(registry=registry)
    log = AuditLog(tmp_path / "s")
    try:
        for _ in range(2):
            GuardMiddleware(policies=[], audit=log, telemetry=telemetry)
        for _ in range(3):
            assert log.append(make_event())
        assert log.flush(10)
        written = log.stats()["written"]
        assert written == 3
        assert registry.get_sample_value("mcpguard_audit_rows_written_total") == written
        assert (
            registry.get_sample_value("mcpguard_audit_flushes_total")
            == (log.stats()["flush_seconds_count"])
        )
    finally:
        log.close()
