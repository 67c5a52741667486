"""promtool accepts the scrape config and the rules, and every alert's unit tests pass."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
from opsfiles import PROMETHEUS_DIR, alert_rules, exported_labels, load_yaml

pytestmark = pytest.mark.prometheus


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, timeout=60, check=False)


def test_check_config(promtool: str) -> None:
    result = _run(promtool, "check", "config", str(PROMETHEUS_DIR / "prometheus.yml"))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout + result.stderr


def test_check_rules(promtool: str) -> None:
    result = _run(promtool, "check", "rules", str(PROMETHEUS_DIR / "alerts.yml"))
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(alert_rules())} rules found" in result.stdout


def test_alert_unit_tests_pass(promtool: str) -> None:
    result = _run(promtool, "test", "rules", str(PROMETHEUS_DIR / "alerts_test.yml"))
    assert result.returncode == 0, result.stdout + result.stderr


def test_alert_unit_tests_can_fail(promtool: str, tmp_path: Path) -> None:
    # A wrong expectation must make promtool fail: the suite is not passing by construction.
    tmp = tmp_path
    (tmp / "alerts.yml").write_text((PROMETHEUS_DIR / "alerts.yml").read_text())
    broken = (
        (PROMETHEUS_DIR / "alerts_test.yml")
        .read_text()
        .replace(
            "severity: critical, job: mcp-guard, where: decide",
            "severity: info, job: mcp-guard, where: decide",
        )
    )
    (tmp / "alerts_test.yml").write_text(broken)
    result = _run(promtool, "test", "rules", str(tmp / "alerts_test.yml"))
    assert result.returncode != 0


def test_every_alert_has_a_firing_unit_test() -> None:
    tests = load_yaml(PROMETHEUS_DIR / "alerts_test.yml")["tests"]
    firing = {
        case["alertname"]
        for t in tests
        for case in t.get("alert_rule_test", ())
        if case.get("exp_alerts")
    }
    names = {r["alert"] for r in alert_rules()}
    assert names and names == firing


def test_the_unit_tests_series_carry_the_labels_the_guard_exports() -> None:
    """The alerts are tested on series like the ones a guard exports: a series missing a
    label (found in review: the decision counters lacked `policy`, added since) would let
    a rule matching or grouping by that label pass here on data no guard produces."""
    exported = exported_labels()
    tests = load_yaml(PROMETHEUS_DIR / "alerts_test.yml")["tests"]
    checked = 0
    for series in (s["series"] for t in tests for s in t["input_series"]):
        name = series.partition("{")[0]
        if name in exported:  # (not `up`: Prometheus's own)
            labels = set(re.findall(r'(\w+)="', series)) - {"job", "instance"}
            assert labels == exported[name], series
            checked += 1
    assert checked


def test_every_alert_is_signal_compared_to_a_threshold() -> None:
    # The end-to-end test evaluates the signal against a live server; keep the form.
    for rule in alert_rules():
        assert re.fullmatch(r"\(.*\)\s*[<>]=?\s*[0-9.e+-]+", rule["expr"].strip(), re.S), rule
        assert rule["annotations"]["summary"] and rule["labels"]["severity"]
