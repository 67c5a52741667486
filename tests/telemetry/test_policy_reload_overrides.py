"""A `GuardTelemetry` subclass that overrides `policy_reload` (the `Telemetry` protocol's
hook, documented as what a failed reload calls) hears every (re)load of the guards using
it, and each guard still reports and releases only its own `mcpguard_policy_info` series."""

from __future__ import annotations

from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from guard import GuardMiddleware, PolicyError, Principal
from guard.telemetry import GuardTelemetry

POLICY = {"name": "weather", "version": "1", "default_effect": "deny", "rules": []}


class _Heard(GuardTelemetry):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.heard: list[tuple[str, str | None]] = []

    def policy_reload(self, result: str, policy_set: Any) -> None:
        self.heard.append((result, None if policy_set is None else policy_set.hash))
        super().policy_reload(result, policy_set)


def _info(registry: CollectorRegistry) -> list[tuple[str, str]]:
    return sorted(
        (s.labels["hash"], s.labels["version"])
        for family in registry.collect()
        if family.name == "mcpguard_policy_info"
        for s in family.samples
    )


def test_an_overridden_policy_reload_hears_each_guards_reloads() -> None:
    registry = CollectorRegistry()
    telemetry = _Heard(registry=registry)
    alice = Principal("alice", ("user",))
    first = GuardMiddleware(POLICY, principal=alice, audit=None, telemetry=telemetry)
    second = GuardMiddleware(POLICY, principal=alice, audit=None, telemetry=telemetry)
    old = first.policy_set.hash
    new = first.reload_policies({**POLICY, "version": "2"}).hash
    with pytest.raises(PolicyError):
        first.reload_policies({"name": "broken", "rules": [{"name": "r", "effect": "maybe"}]})
    assert telemetry.heard == [("ok", old), ("ok", old), ("ok", new), ("error", new)]
    # each guard still holds its own series: the set each has in force, until it closes
    assert _info(registry) == sorted([(old, "weather@1"), (new, "weather@2")])
    first.close()
    assert _info(registry) == [(old, "weather@1")]
    second.close()
    assert _info(registry) == []
    assert registry.get_sample_value("mcpguard_policy_reloads_total", {"result": "ok"}) == 3.0
    assert registry.get_sample_value("mcpguard_policy_reloads_total", {"result": "error"}) == 1.0
