"""The audit alerts, evaluated by promtool on the values a real guard exports.

MCPGuardAuditSpilling (warning) says records go to the spill file; MCPGuardAuditFailing
(critical) says records "could be neither written nor spilled: the audit trail has gaps".
Found in review: `mcpguard_audit_rows_failed_total` also counted every store write that
failed, spilled or not, so a store that refused writes for a moment (disk full, then
space back) paged the critical alert although every record was spilled and stored.
"""

from __future__ import annotations

import errno
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml
from fastmcp import Client
from opsfiles import PROMETHEUS_DIR
from prometheus_client import CollectorRegistry

from guard import GuardMiddleware, Principal
from guard.audit import AuditLog, open_store, verify
from guard.telemetry import GuardTelemetry

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "middleware"))
from mw_support import POLICY, demo_server

ALICE = Principal("alice", roles=("user",), auth_method="test")
AUDIT_METRICS = ("mcpguard_audit_rows_spilled_total", "mcpguard_audit_rows_failed_total")


def _alerts_firing(promtool: str, tmp_path: Path, before: dict[str, float],
                   after: dict[str, float]) -> set[str]:  # fmt: skip
    """The audit alerts promtool finds firing 5 minutes after the counters went from
    `before` to `after` (scraped once a minute)."""
    series = [
        {"series": f'{name}{{job="mcp-guard"}}', "values": f"{before[name]}x2 {after[name]}x4"}
        for name in AUDIT_METRICS
    ]
    firing = set()
    for alert in ("MCPGuardAuditSpilling", "MCPGuardAuditFailing"):
        test = {
            "rule_files": [str(PROMETHEUS_DIR / "alerts.yml")],
            "evaluation_interval": "1m",
            "tests": [
                {
                    "interval": "1m",
                    "input_series": series,
                    # expecting none: promtool fails exactly when the alert fires
                    "alert_rule_test": [{"eval_time": "5m", "alertname": alert, "exp_alerts": []}],
                }
            ],
        }
        path = tmp_path / f"{alert}.yml"
        path.write_text(yaml.safe_dump(test))
        done = subprocess.run(
            [promtool, "test", "rules", str(path)],
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        if done.returncode != 0:
            assert "exp:" in done.stdout + done.stderr, done.stdout + done.stderr
            firing.add(alert)
    return firing


async def _calls(audit: AuditLog, registry: CollectorRegistry, n: int) -> dict[str, float]:
    mw = GuardMiddleware(
        POLICY, principal=ALICE, audit=audit, telemetry=GuardTelemetry(registry=registry)
    )
    mcp = demo_server()
    mcp.add_middleware(mw)
    async with Client(mcp) as client:
        for i in range(n):
            await client.call_tool("echo", {"text": f"t{i}"})
    audit.flush()
    return {name: registry.get_sample_value(name) or 0.0 for name in AUDIT_METRICS}


async def test_a_store_outage_the_spill_file_absorbs_is_not_a_gap(
    promtool: str, tmp_path: Path
) -> None:
    disk = {"full": True}

    def hook(table: str, rows: int) -> None:
        if disk["full"]:
            raise OSError(errno.ENOSPC, "No space left on device")

    registry = CollectorRegistry()
    store = tmp_path / "audit"
    audit = AuditLog(store, write_hook=hook, flush_interval=3600)
    before = {name: registry.get_sample_value(name) or 0.0 for name in AUDIT_METRICS}
    during = await _calls(audit, registry, 5)
    disk["full"] = False  # space is back: the spilled rows are loaded back
    audit.close()
    with open_store(store) as con:
        stored = con.execute("SELECT count(*) FROM decisions WHERE method = 'tools/call'")
        assert stored.fetchone() == (5,)  # nothing was lost
    assert verify(store).ok and audit.stats()["failed"] > 0
    assert during["mcpguard_audit_rows_spilled_total"] > 0
    assert during["mcpguard_audit_rows_failed_total"] == 0, during
    assert _alerts_firing(promtool, tmp_path, before, during) == {"MCPGuardAuditSpilling"}


async def test_records_neither_stored_nor_spilled_page(promtool: str, tmp_path: Path) -> None:
    def hook(table: str, rows: int) -> None:
        raise OSError(errno.EIO, "I/O error")

    registry = CollectorRegistry()
    spill = tmp_path / "spill"
    audit = AuditLog(tmp_path / "audit", write_hook=hook, spill_dir=spill, flush_interval=3600)
    before = {name: registry.get_sample_value(name) or 0.0 for name in AUDIT_METRICS}
    # the spill file's disk goes too: every spill from now on fails
    with audit._spill.lock:
        if audit._spill._fh is not None:
            audit._spill._fh.close()
            audit._spill._fh = None
        shutil.rmtree(spill)
        spill.write_text("not a directory")
    during = await _calls(audit, registry, 5)
    stats: dict[str, Any] = audit.stats()
    assert stats["unsaved"] > 0  # in memory only: a crash now loses them
    assert during["mcpguard_audit_rows_failed_total"] > 0, during
    assert "MCPGuardAuditFailing" in _alerts_firing(promtool, tmp_path, before, during)
    audit.close()
