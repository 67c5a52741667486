"""The Grafana dashboard and provisioning are consistent with the guard's metrics."""

from __future__ import annotations

import json
import re

from opsfiles import DASHBOARD, OPS, alert_rules, dashboard_exprs, exported_labels, load_yaml

_REQUIRED_TOPICS = {
    "decisions": "mcpguard_decisions_total",
    "latency": "mcpguard_decision_duration_seconds_bucket",
    "auth": "mcpguard_auth_failures_total",
    "audit": "mcpguard_audit_queue_depth",
    "policy": "mcpguard_policy_info",
}


def _datasources() -> dict[str, dict[str, object]]:
    doc = load_yaml(OPS / "grafana/provisioning/datasources/datasources.yaml")
    return {d["uid"]: d for d in doc["datasources"]}


def test_dashboard_panels_are_well_formed() -> None:
    dash = json.loads(DASHBOARD.read_text())
    ids = [p["id"] for p in dash["panels"]]
    assert len(ids) == len(set(ids)) >= 10
    sources = _datasources()
    for panel in dash["panels"]:
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["expr"].strip() and target["datasource"]["uid"] in sources


def test_dashboard_covers_every_topic() -> None:
    exprs = " ".join(e for _, e in dashboard_exprs())
    for topic, metric in _REQUIRED_TOPICS.items():
        assert metric in exprs, topic
    assert "topk(10, sum by (resource)" in exprs and "topk(10, sum by (policy, rule" in exprs


def test_latency_panel_links_exemplars_to_traces() -> None:
    dash = json.loads(DASHBOARD.read_text())
    latency = next(p for p in dash["panels"] if "latency percentiles" in p["title"].lower())
    assert all(t.get("exemplar") for t in latency["targets"])
    prometheus = _datasources()["prometheus"]
    (destination,) = prometheus["jsonData"]["exemplarTraceIdDestinations"]  # type: ignore[index]
    assert destination["name"] == "trace_id" and destination["datasourceUid"] in _datasources()


def test_every_metric_queried_is_one_the_guard_exports() -> None:
    exported = set(exported_labels())
    queried = {
        name
        for expr in [e for _, e in dashboard_exprs()] + [r["expr"] for r in alert_rules()]
        for name in re.findall(r"\bmcpguard_[a-z_]+", expr)
    }
    assert queried and queried <= exported, queried - exported
