"""A queued decision record the writer cannot encode is dropped after its call was
allowed (the tool ran), and counted only in `AuditLog.stats()["append_errors"]`, a key the
AuditCollector does not read. `mcpguard_audit_rows_failed_total` stays 0, so the critical
MCPGuardAuditFailing alert ("the audit trail has gaps") never fires for this gap. The same
holds for outcome rows that cannot be queued (`append_outcome` swallows and counts there)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from fastmcp import Client
from prometheus_client import CollectorRegistry

from guard import GuardMiddleware, Principal
from guard.audit import AuditLog
from guard.audit.rows import RowBuilder
from guard.telemetry import GuardTelemetry

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "middleware"))
from mw_support import POLICY, demo_server

ALICE = Principal("alice", roles=("user",), auth_method="test")


async def test_a_record_lost_in_the_writer_shows_in_the_failed_rows_metric(
    tmp_path: Path, monkeypatch: Any
) -> None:
    real_body = RowBuilder.body

    def body(self: RowBuilder, item: tuple[Any, ...], cache: Any = None) -> str:
        if "boom" in repr(item):  # one record that cannot be encoded
            raise ValueError("cannot encode")
        return real_body(self, item, cache)

    monkeypatch.setattr(RowBuilder, "body", body)
    registry = CollectorRegistry()
    audit = AuditLog(tmp_path / "audit")
    mw = GuardMiddleware(POLICY, principal=ALICE, audit=audit,
                         telemetry=GuardTelemetry(registry=registry))  # fmt: skip
    mcp = demo_server()
    mcp.add_middleware(mw)
    async with Client(mcp) as client:
        assert "boom" in (await client.call_tool("echo", {"text": "boom"})).data  # it ran
        await client.call_tool("echo", {"text": "fine"})
    audit.flush()
    stats = audit.stats()
    sample = registry.get_sample_value
    failed = sample("mcpguard_audit_rows_failed_total")
    mw.close()
    assert stats["append_errors"] == 1  # the log knows a record is missing ...
    assert failed is not None and failed >= 1, (failed, stats["append_errors"])  # ... metrics don't
