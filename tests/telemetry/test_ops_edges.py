"""Operations (found in review, each failed before its fix): policy info (multiprocess, and
guards sharing a telemetry), the guard-errors alert, the /metrics token, and the audit
commands on odd input."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from fastmcp import Client, FastMCP
from prometheus_client import CollectorRegistry

from guard import GuardMiddleware, PolicyError, Principal
from guard.telemetry import GuardTelemetry

_REPO = Path(__file__).resolve().parents[2]

POLICY = """
name: weather
version: "1.0"
default_effect: deny
rules:
  - name: users-read-weather
    effect: allow
    agents: {roles: [user]}
    tools: {names: [note]}
"""


class _BrokenRedactor:
    def redact(self, args: Any) -> Any:
        if args and "boom" in str(args):
            raise RuntimeError("redactor broken")
        return args, ()


def test_multiprocess_policy_info_keeps_only_the_policy_in_force(tmp_path: Path) -> None:
    directory = tmp_path / "mp"
    directory.mkdir()
    script = textwrap.dedent(
        """
        from prometheus_client import CollectorRegistry
        from guard.telemetry import GuardTelemetry, scrape_registry

        class P:
            name, version = "weather", "1.0"
        class Q:
            name, version = "weather", "2.0"
        class S1:
            hash, policies = "h1", (P(),)
        class S2:
            hash, policies = "h2", (Q(),)

        t = GuardTelemetry(registry=CollectorRegistry())
        t.policy_reload("ok", S1())
        t.policy_reload("ok", S2())  # a reload: h1 is no longer in force
        reg = scrape_registry()
        for m in reg.collect():
            if m.name == "mcpguard_policy_info":
                for s in m.samples:
                    if s.value:
                        print(s.labels["hash"], s.value)
        """
    )
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(directory), "PYTHONPATH": str(_REPO)}
    out = subprocess.run(
        [sys.executable, "-W", "ignore", "-c", script],
        env=env, capture_output=True, text=True, check=True,
    ).stdout.split("\n")  # fmt: skip
    in_force = sorted(line.split()[0] for line in out if line)
    assert in_force == ["h2"], f"series with value 1 after a reload: {in_force}"


def _policy_info(registry: CollectorRegistry) -> dict[str, float]:
    return {
        s.labels["version"]: s.value
        for m in registry.collect() if m.name == "mcpguard_policy_info"
        for s in m.samples
    }  # fmt: skip


def test_guards_sharing_a_telemetry_each_keep_their_policy_info(tmp_path: Path) -> None:
    """Found in review: the telemetry remembered one policy set, so the second guard built
    on it removed the first one's series, and a reload of the first removed the second's."""
    weather, notes = tmp_path / "weather.yaml", tmp_path / "notes.yaml"
    weather.write_text(POLICY)
    notes.write_text(POLICY.replace("weather", "notes"))
    registry = CollectorRegistry()
    telemetry = GuardTelemetry(registry=registry)
    first = GuardMiddleware(str(weather), audit=None, telemetry=telemetry)
    GuardMiddleware(str(notes), audit=None, telemetry=telemetry)
    assert _policy_info(registry) == {"weather@1.0": 1.0, "notes@1.0": 1.0}
    weather.write_text(POLICY.replace('"1.0"', '"1.1"'))
    first.reload_policies()
    assert _policy_info(registry) == {"weather@1.1": 1.0, "notes@1.0": 1.0}
    weather.write_text("rules: [")  # a failed reload keeps the set in force, and its series
    with pytest.raises(PolicyError):
        first.reload_policies()
    assert _policy_info(registry) == {"weather@1.1": 1.0, "notes@1.0": 1.0}


def test_a_policy_set_in_force_in_two_guards_keeps_its_series_until_both_leave_it(
    tmp_path: Path,
) -> None:
    first, second = tmp_path / "a.yaml", tmp_path / "b.yaml"
    for path in (first, second):
        path.write_text(POLICY)
    registry = CollectorRegistry()
    telemetry = GuardTelemetry(registry=registry)
    guards = [GuardMiddleware(str(p), audit=None, telemetry=telemetry) for p in (first, second)]
    assert _policy_info(registry) == {"weather@1.0": 1.0}
    first.write_text(POLICY.replace('"1.0"', '"2.0"'))
    guards[0].reload_policies()
    assert _policy_info(registry) == {"weather@1.0": 1.0, "weather@2.0": 1.0}  # 1.0: second
    second.write_text(POLICY.replace('"1.0"', '"2.0"'))
    guards[1].reload_policies()
    assert _policy_info(registry) == {"weather@2.0": 1.0}


def _exposed_policies(registry: CollectorRegistry) -> list[str]:
    """The `mcpguard_policy_info` series a scrape shows (their `version` labels)."""
    from prometheus_client import generate_latest

    return sorted(
        line.split('version="', 1)[1].split('"', 1)[0]
        for line in generate_latest(registry).decode().splitlines()
        if line.startswith("mcpguard_policy_info{")
    )


def test_a_closed_guard_no_longer_reports_its_policy_set(tmp_path: Path) -> None:
    """Found in review: a closed guard kept its reference to the policy set it had in
    force, so `mcpguard_policy_info` showed the set of a guard long gone (a server
    rebuilding its guard on each restart of an app piled series up)."""
    paths = [tmp_path / "a.yaml", tmp_path / "b.yaml", tmp_path / "notes.yaml"]
    for path in paths[:2]:
        path.write_text(POLICY)
    paths[2].write_text(POLICY.replace("weather", "notes"))
    registry = CollectorRegistry()
    telemetry = GuardTelemetry(registry=registry)
    first, second, notes = (GuardMiddleware(str(p), audit=None, telemetry=telemetry) for p in paths)
    assert _exposed_policies(registry) == ["notes@1.0", "weather@1.0"]
    first.close()
    assert _exposed_policies(registry) == ["notes@1.0", "weather@1.0"]  # second has it
    second.close()
    assert _exposed_policies(registry) == ["notes@1.0"]
    second.close()  # idempotent: leaves the others' series alone
    first.close()
    assert _exposed_policies(registry) == ["notes@1.0"]
    notes.close()
    assert _exposed_policies(registry) == []
    paths[2].write_text(POLICY.replace("weather", "notes").replace('"1.0"', '"2.0"'))
    with contextlib.suppress(Exception):  # a closed guard reloaded: it reports nothing
        notes.reload_policies()
    assert _exposed_policies(registry) == []
    again = GuardMiddleware(str(paths[0]), audit=None, telemetry=telemetry)
    assert _exposed_policies(registry) == ["weather@1.0"]
    again.close()


def test_a_reload_racing_close_leaves_no_policy_set_behind(tmp_path: Path) -> None:
    """A reload on the watcher's thread may pass the reporter's closed check just before
    the guard closes on another thread: what it reports after the release is dropped, so
    the closed guard's set does not come back for good (found in review)."""
    path = tmp_path / "a.yaml"
    path.write_text(POLICY)
    registry = CollectorRegistry()
    telemetry = GuardTelemetry(registry=registry)
    guard = GuardMiddleware(str(path), audit=None, telemetry=telemetry)
    reporter, in_force = guard._policy_reload, guard.policy_set
    guard.close()
    assert _exposed_policies(registry) == []
    telemetry.metrics.policy_reload("ok", in_force, reporter)  # past the check: too late
    assert _exposed_policies(registry) == []


def _store(tmp_path: Path) -> Path:
    """A real store with one guarded call in it."""
    import asyncio

    from guard.audit import AuditLog

    (tmp_path / "p.yaml").write_text(POLICY)
    log = AuditLog(tmp_path / "store")
    mw = GuardMiddleware(str(tmp_path / "p.yaml"), principal=Principal("alice", ("user",)),
                         audit=log, telemetry=False)  # fmt: skip
    mcp = FastMCP("w")

    @mcp.tool
    def note(text: str) -> str:
        return text

    mcp.add_middleware(mw)

    async def call() -> None:
        async with Client(mcp) as client:
            await client.call_tool("note", {"text": "hi"})

    asyncio.run(call())
    log.flush()
    mw.close()
    return tmp_path / "store"


@pytest.mark.parametrize("days", ["nan", "inf", "1000000"])
def test_retention_days_edge_values_are_a_usage_error_not_a_traceback(
    tmp_path: Path, days: str
) -> None:
    from click.testing import CliRunner

    from guard.cli import main

    store = _store(tmp_path)
    result = CliRunner().invoke(main, ["retention", str(store), "--days", days])
    assert not isinstance(result.exception, (ValueError, OverflowError)), repr(result.exception)
    if days == "nan":  # a usage error (exit 1: 2 is explain's "denied")
        assert result.exit_code == 1 and "--days" in result.output, result.output
    else:  # nothing is that old
        assert result.exit_code == 0 and " 0 row(s)" in result.output, result.output


def test_verify_reports_a_corrupt_segment_instead_of_crashing(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from guard.cli import main

    store = _store(tmp_path)
    segment = next((store / "decisions").glob("*.parquet"), None) or next(
        (store / "decisions").glob("*.jsonl")
    )
    data = segment.read_bytes()
    segment.write_bytes(data[: len(data) // 2])  # a truncated segment (disk full, bad copy)
    result = CliRunner().invoke(main, ["verify", str(store)])
    assert result.exit_code == 1
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(
        result.exception
    )


async def test_telemetry_failure_is_not_a_denial_yet_the_critical_alert_says_so(
    tmp_path: Path,
) -> None:
    """`where="telemetry"` counts a failure that denies nothing (README, Fail closed);
    MCPGuardErrors pages critical on it with "Requests were denied"."""
    import shutil

    import yaml

    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("needs promtool")
    (tmp_path / "p.yaml").write_text(POLICY)
    registry = CollectorRegistry()
    telemetry = GuardTelemetry(registry=registry)

    def broken_observe(*_: Any) -> None:
        raise RuntimeError("histogram broken")

    telemetry._observe = broken_observe  # type: ignore[method-assign]
    mw = GuardMiddleware(str(tmp_path / "p.yaml"), principal=Principal("alice", ("user",)),
                         audit=None, telemetry=telemetry)  # fmt: skip
    mcp = FastMCP("w")

    @mcp.tool
    def note(text: str) -> str:
        return text

    mcp.add_middleware(mw)
    async with Client(mcp) as client:
        assert (await client.call_tool("note", {"text": "hi"})).data == "hi"  # not denied
    assert registry.get_sample_value("mcpguard_guard_errors_total", {"where": "telemetry"}) == 1

    rules = _REPO / "ops" / "prometheus" / "alerts.yml"
    test = {
        "rule_files": [str(rules)],
        "evaluation_interval": "1m",
        "tests": [{
            "interval": "1m",
            "input_series": [{
                "series": 'mcpguard_guard_errors_total{job="mcp-guard", where="telemetry"}',
                "values": "0 1 1 1",
            }],
            "alert_rule_test": [
                {"eval_time": "3m", "alertname": "MCPGuardErrors", "exp_alerts": []}
            ],
        }],
    }  # fmt: skip
    (tmp_path / "t.yml").write_text(yaml.safe_dump(test))
    run = subprocess.run([promtool, "test", "rules", str(tmp_path / "t.yml")],
                         capture_output=True, text=True)  # fmt: skip
    assert run.returncode == 0, run.stdout + run.stderr


@pytest.mark.parametrize(
    ("token", "header"),
    [
        ("s3cret\n", "Bearer s3cret"),  # token read from a file; the scraper trims it
        ("s3cret", "bearer s3cret"),  # the scheme is case-insensitive (RFC 9110 11.1)
    ],
)
def test_metrics_token_accepts_what_a_scraper_sends(token: str, header: str) -> None:
    from starlette.testclient import TestClient

    from guard.telemetry import mount_metrics

    registry = CollectorRegistry()
    GuardTelemetry(registry=registry)
    mcp = FastMCP("w")
    try:
        mount_metrics(mcp, registry=registry, token=token)
    except ValueError:
        return  # refusing an unusable token at mount time is fine too
    with TestClient(mcp.http_app()) as client:
        assert client.get("/metrics").status_code == 401
        assert client.get("/metrics", headers={"Authorization": header}).status_code == 200
