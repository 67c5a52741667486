"""ops/compose.yaml cannot run here (no Docker engine): check what it references instead.

Every bind-mounted file exists, every config file a container is told to read is mounted
where it looks, and every `service:port` any file points at is a port that service exposes
(and the port its own config listens on).
"""

from __future__ import annotations

import re
from pathlib import Path, PurePosixPath
from typing import Any

import pytest
from opsfiles import OPS, load_yaml

COMPOSE = OPS / "compose.yaml"
REPO = OPS.parent


def _compose() -> dict[str, Any]:
    doc = load_yaml(COMPOSE)
    assert isinstance(doc, dict) and "services" in doc
    return doc


def _mounts(service: dict[str, Any]) -> dict[str, Path]:
    """container path -> host path, for bind mounts."""
    out = {}
    for volume in service.get("volumes", ()):
        source, target = volume.split(":")[:2]
        if source.startswith((".", "/")):
            out[target] = (OPS / source).resolve()
    return out


def _host_path(service: dict[str, Any], container_path: str) -> Path | None:
    """The host file behind `container_path`, through the service's bind mounts."""
    wanted = PurePosixPath(container_path)
    for target, source in _mounts(service).items():
        base = PurePosixPath(target)
        if wanted == base:
            return source
        if base in wanted.parents:
            return source / wanted.relative_to(base)
    return None


def _command(service: dict[str, Any]) -> str:
    command = service.get("command", "")
    return command if isinstance(command, str) else " ".join(command)


def test_the_stack_has_its_services() -> None:
    services = _compose()["services"]
    assert {"guarded-server", "prometheus", "grafana", "otel-collector"} <= set(services)
    for name, service in services.items():
        for dep in service.get("depends_on", ()):
            assert dep in services, f"{name} depends on unknown service {dep}"


def test_every_bind_mount_exists() -> None:
    for name, service in _compose()["services"].items():
        for target, source in _mounts(service).items():
            assert source.exists(), f"{name}: {source} (mounted at {target}) is missing"
            if PurePosixPath(target).suffix in (".yml", ".yaml", ".json"):
                assert source.is_file(), f"{name}: {source} should be a file"


@pytest.mark.parametrize(
    "service,flag",
    [
        ("prometheus", r"--config\.file=(\S+)"),
        ("otel-collector", r"--config=(\S+)"),
        ("tempo", r"-config\.file=(\S+)"),
    ],
)
def test_config_files_are_mounted_where_the_command_reads_them(service: str, flag: str) -> None:
    svc = _compose()["services"][service]
    match = re.search(flag, _command(svc))
    assert match, f"{service} command names no config file"
    host = _host_path(svc, match.group(1))
    assert host is not None and host.is_file(), f"{service}: {match.group(1)} is not mounted"
    load_yaml(host)  # parses


def test_prometheus_rule_files_are_mounted_next_to_the_config() -> None:
    svc = _compose()["services"]["prometheus"]
    config_path = PurePosixPath(re.search(r"--config\.file=(\S+)", _command(svc)).group(1))  # type: ignore[union-attr]
    config = load_yaml(OPS / "prometheus" / "prometheus.yml")
    for rule_file in config["rule_files"]:
        host = _host_path(svc, str(config_path.parent / rule_file))
        assert host is not None and host.is_file(), rule_file


def test_grafana_provisioning_points_at_the_mounted_dashboards() -> None:
    svc = _compose()["services"]["grafana"]
    providers = load_yaml(OPS / "grafana/provisioning/dashboards/dashboards.yaml")["providers"]
    for provider in providers:
        host = _host_path(svc, provider["options"]["path"])
        assert host is not None and (host / "mcp-guard.json").is_file()
    for kind in ("datasources", "dashboards"):
        assert _host_path(svc, f"/etc/grafana/provisioning/{kind}") is not None


def test_the_example_server_is_the_one_in_the_repo() -> None:
    svc = _compose()["services"]["guarded-server"]
    command = _command(svc)
    script = re.search(r"/app/(examples/\S+\.py)", command)
    assert script and (REPO / script.group(1)).is_file()
    assert _host_path(svc, "/app") == REPO
    port = re.search(r"--port (\d+)", command)
    assert port and port.group(1) in svc["expose"]


def _referenced_files() -> dict[str, str]:
    files = {
        str(p.relative_to(OPS)): p.read_text()
        for p in OPS.rglob("*")
        if p.is_file() and p.suffix in (".yml", ".yaml", ".json") and p != COMPOSE
    }
    compose = _compose()
    for name, svc in compose["services"].items():
        env = svc.get("environment", {})
        files[f"compose:{name}"] = _command(svc) + " " + " ".join(map(str, env.values()))
    return files


def test_every_service_port_reference_is_exposed() -> None:
    services = _compose()["services"]
    found = 0
    for origin, text in _referenced_files().items():
        for host, port in re.findall(r"(?<![\w.-])([a-z][a-z0-9-]*):(\d{2,5})\b", text):
            if host in services:
                found += 1
                exposed = [str(p) for p in services[host].get("expose", ())]
                assert port in exposed, f"{origin} points at {host}:{port}; exposed: {exposed}"
    assert found >= 6  # server, prometheus, tempo (x2), loki (x2), collector


def test_each_service_listens_where_it_exposes() -> None:
    services = _compose()["services"]
    listening = {
        "otel-collector": load_yaml(OPS / "otel-collector/config.yaml"),
        "tempo": load_yaml(OPS / "tempo/tempo.yaml"),
    }
    for name, config in listening.items():
        text = repr(config)
        ports = set(re.findall(r"0\.0\.0\.0:(\d+)", text))
        ports |= {str(v) for v in re.findall(r"'http_listen_port': (\d+)", text)}
        assert ports and ports <= {str(p) for p in services[name]["expose"]}, (name, ports)


def test_published_ports_stay_on_this_machine() -> None:
    """The demo's API keys are in the README and Grafana lets anyone view: a port
    published on every interface would hand an admin key's server to the network."""
    published = [
        (name, str(mapping))
        for name, svc in _compose()["services"].items()
        for mapping in svc.get("ports", ())
    ]
    assert len(published) >= 4
    for name, mapping in published:
        assert mapping.startswith("127.0.0.1:"), (name, mapping)
