"""Paths and loaders for the ops/ checks (imported by the tests as `opsfiles`)."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

OPS = Path(__file__).resolve().parents[2] / "ops"
PROMETHEUS_DIR = OPS / "prometheus"
DASHBOARD = OPS / "grafana" / "dashboards" / "mcp-guard.json"


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def dashboard_exprs() -> list[tuple[str, str]]:
    """`(panel title, expr)` of every query of every panel of the dashboard."""
    dash = json.loads(DASHBOARD.read_text())
    return [(p["title"], t["expr"]) for p in dash["panels"] for t in p.get("targets", ())]


def alert_rules() -> list[dict[str, Any]]:
    doc = load_yaml(PROMETHEUS_DIR / "alerts.yml")
    return [r for g in doc["groups"] for r in g["rules"] if "alert" in r]


def exported_labels() -> dict[str, frozenset[str]]:
    """The label names of every sample the guard exports, by sample name: a guard's
    telemetry, after one of each thing it counts."""
    from prometheus_client import CollectorRegistry

    from guard.events import DecisionEvent
    from guard.policy.model import AccessRequest, Decision, Principal, Resource
    from guard.telemetry import GuardTelemetry

    registry = CollectorRegistry()
    telemetry = GuardTelemetry(registry=registry)
    telemetry.add_audit_source(lambda: {"queue_depth": 0, "written": 1, "flush_seconds_count": 1})
    telemetry.auth_failure("api_key", "invalid_api_key")
    telemetry.guard_error("decide")
    request = AccessRequest(Principal("u"), Resource("tool", "t"), "call", method="tools/call")
    event = DecisionEvent("id", request, Decision(True, "rule"), method="tools/call")
    telemetry.end_decision(telemetry.start_decision("tools/call", "t"), event)

    class _Set:
        hash, policies = "h", ()

    telemetry.policy_reload("ok", _Set())
    return {s.name: frozenset(s.labels) for m in registry.collect() for s in m.samples}


def require_binary(name: str) -> str:
    """The path of a Debian prometheus binary. Missing, it skips a developer's ad-hoc run
    but fails under CI (`CI` set), where `scripts/test.sh` must have installed it."""
    path = shutil.which(name)
    if path is None:
        message = f"{name} missing: scripts/test.sh installs Debian's prometheus package"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return path
