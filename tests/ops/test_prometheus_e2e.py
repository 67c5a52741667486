"""The ops stack against real parts: Debian's Prometheus scrapes the example guarded server
(real HTTP, real clients) while it allows, denies and refuses callers; then every Grafana
panel query and every alert is evaluated through Prometheus's HTTP API and must return data,
and the latency exemplars Prometheus stored are trace ids of spans the server exported.
"""

from __future__ import annotations

import asyncio
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from fastmcp import Client
from opsfiles import PROMETHEUS_DIR, alert_rules, dashboard_exprs, load_yaml, require_binary
from otlp_receiver import Receiver, otlp_receiver
from servers import REPO, ServerProcess, free_port, running_server

pytestmark = pytest.mark.prometheus

SERVER = REPO / "examples" / "ops_server.py"
# Grafana's interval variables, at values that fit a test run of some seconds.
GRAFANA_VARS = {"$__rate_interval": "1m", "$__interval": "15s", "$__range": "5m"}


def _adapted_config(target: str, tmp: Path) -> Path:
    config = load_yaml(PROMETHEUS_DIR / "prometheus.yml")
    config["global"].update(scrape_interval="1s", evaluation_interval="1s")
    config["rule_files"] = [str(PROMETHEUS_DIR / f) for f in config["rule_files"]]
    (job,) = config["scrape_configs"]
    for static in job["static_configs"]:
        static["targets"] = [target]
    path = tmp / "prometheus.yml"
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with otlp_receiver() as r:
        yield r


@pytest.fixture
def server(receiver: Receiver, tmp_path: Path) -> Iterator[ServerProcess]:
    env = {
        "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.url,
        "OTEL_BSP_SCHEDULE_DELAY": "200",
        "OTEL_BLRP_SCHEDULE_DELAY": "200",
        "MCP_GUARD_AUDIT": str(tmp_path / "audit.duckdb"),
    }
    with running_server(SERVER, transport="http", env=env) as srv:
        yield srv


@pytest.fixture
def prometheus(server: ServerProcess, tmp_path: Path) -> Iterator[str]:
    binary = require_binary("prometheus")
    config = _adapted_config(f"127.0.0.1:{server.port}", tmp_path)
    port = free_port()
    log = (tmp_path / "prometheus.log").open("wb")
    proc = subprocess.Popen(
        [
            binary,
            f"--config.file={config}",
            f"--storage.tsdb.path={tmp_path / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--enable-feature=exemplar-storage",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, (tmp_path / "prometheus.log").read_text()
            try:
                if httpx.get(f"{url}/-/ready", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "prometheus not ready"
            time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


async def _traffic(mcp_url: str, rounds: int) -> None:
    def client(key: str) -> Client[Any]:
        return Client({"mcpServers": {"s": {"url": mcp_url, "headers": {"X-API-Key": key}}}})

    for _ in range(rounds):
        async with client("user-key") as c:
            await c.list_tools()
            await c.call_tool("get_weather", {"city": "Oslo"})
            with pytest.raises(Exception, match="delete_city"):
                await c.call_tool("delete_city", {"city": "Oslo"})
        async with client("admin-key") as c:
            await c.call_tool("delete_city", {"city": "Atlantis"})
        async with client("not-a-key") as c:
            with pytest.raises(Exception, match="get_weather"):
                await c.call_tool("get_weather", {"city": "Oslo"})
        await asyncio.sleep(0.4)


def _query(url: str, expr: str) -> list[dict[str, Any]]:
    response = httpx.get(f"{url}/api/v1/query", params={"query": expr}, timeout=10)
    body = response.json()
    assert response.status_code == 200 and body["status"] == "success", (expr, body)
    return list(body["data"]["result"])


def _wait(predicate: Any, what: str, timeout: float = 60) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.3)


def _grafana(expr: str) -> str:
    for var, value in GRAFANA_VARS.items():
        expr = expr.replace(var, value)
    assert "$" not in expr, f"unsubstituted Grafana variable in {expr}"
    return expr


def _signal(expr: str) -> str:
    """`(signal) > threshold` -> `signal` (the form test_promtool enforces)."""
    body = expr.strip()
    return body[1 : body.rindex(")")]


def test_dashboard_and_alerts_return_data_from_a_real_prometheus(
    prometheus: str, server: ServerProcess, receiver: Receiver
) -> None:
    asyncio.run(_traffic(server.url, rounds=4))
    # enough scrapes after the traffic for every rate() window to hold two samples
    scraped = 'count_over_time(mcpguard_decisions_total{decision="deny"}[1m]) >= 3'
    _wait(lambda: _query(prometheus, scraped), "three scrapes of the denials")
    asyncio.run(_traffic(server.url, rounds=2))
    audited = "count_over_time(mcpguard_audit_rows_written_total[1m]) >= 3"
    _wait(lambda: _query(prometheus, audited), "audit writer stats")

    failures = []
    assert len(dashboard_exprs()) >= 15 and len(alert_rules()) >= 8
    for title, expr in dashboard_exprs():
        if not _query(prometheus, _grafana(expr)):
            failures.append(f"panel {title!r}: {expr}")
    for rule in alert_rules():
        _query(prometheus, rule["expr"])  # the whole rule parses and evaluates
        if not _query(prometheus, _signal(rule["expr"])):
            failures.append(f"alert {rule['alert']}: {_signal(rule['expr'])}")
    assert not failures, "queries with no data:\n" + "\n".join(failures)

    # the decisions the traffic made, as Prometheus sees them
    denied = _query(
        prometheus, 'sum by (resource) (mcpguard_decisions_total{decision="deny",action="call"})'
    )
    assert {r["metric"]["resource"] for r in denied} == {"delete_city", "get_weather"}
    refused = _query(prometheus, "sum(mcpguard_auth_failures_total)")
    assert float(refused[0]["value"][1]) >= 6
    assert _query(prometheus, 'mcpguard_policy_info{version="weather@1.0"}')

    # Prometheus loaded and evaluates every alert rule without error
    def rules_evaluated() -> list[dict[str, Any]]:
        groups = httpx.get(f"{prometheus}/api/v1/rules", timeout=10).json()["data"]["groups"]
        rules = [r for g in groups for r in g["rules"]]
        return rules if all(r["lastEvaluation"][:4] != "0001" for r in rules) else []

    rules = _wait(rules_evaluated, "alert rules to be evaluated")
    assert {r["name"] for r in rules} == {r["alert"] for r in alert_rules()}
    assert all(r["health"] == "ok" for r in rules), [(r["name"], r.get("lastError")) for r in rules]

    # exemplars stored by Prometheus point at spans the server exported over OTLP
    def exemplar_ids() -> set[str]:
        now = time.time()
        body = httpx.get(
            f"{prometheus}/api/v1/query_exemplars",
            params={
                "query": "mcpguard_decision_duration_seconds_bucket",
                "start": now - 600,
                "end": now + 60,
            },
            timeout=10,
        ).json()
        return {e["labels"]["trace_id"] for s in body["data"] for e in s["exemplars"]}

    ids = _wait(exemplar_ids, "exemplars in Prometheus")
    spans = receiver.wait_for(lambda s: s.name.startswith("authorize ") and s.trace_id in ids)
    assert spans and all(s.service == "weather-mcp" for s in spans)
    # and the decision records left as OTLP logs, linked to those same spans
    span_ids = {s.span_id for s in spans}
    logs = _wait(
        lambda: [r for r in list(receiver.logs) if r.span_id in span_ids], "decision log records"
    )
    assert all(r.event_name == "mcp_guard.decision" for r in logs)
