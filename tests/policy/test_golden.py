"""Golden decision cases: YAML files of policies and requests with the decision each must
get, run by this one loader. Each file under `golden/` holds one or more documents:

```yaml
description: what the document shows
policies: [ {name: ..., rules: [...]}, ... ]   # as load_policies takes them; [] = none
cases:
  - name: what the case shows
    principal: {user_id: a, roles: [r], agent_id: x, claims: {...}, authenticated: true}
    tool: NAME                 # or resource: {kind, name, uri, template, tags, namespace}
    action: call               # default: call / read / get by kind
    args: {k: v}               # "<UNKNOWN>" stands for a redacted value
    time: "2024-06-03T08:30:00Z"
    allowed: true              # required
    reason: rule               # optional checks: reason, rule, policy, matched, errors
    rule: name
```
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from guard.policy import PolicyCondition, load_policies
from guard.policy.conditions import UNKNOWN, register_condition, unregister_condition
from guard.policy.model import AccessRequest, Principal, Resource
from guard.policy.policyset import PolicySet

GOLDEN = Path(__file__).parent / "golden"
_DEFAULT_ACTION = {"tool": "call", "resource": "read", "resource_template": "read", "prompt": "get"}


class _SeedStyle(PolicyCondition):
    """Written the way the seed page shows custom conditions."""

    def evaluate(self, context: Mapping[str, Any]) -> bool:
        return bool(context["user"]["id"] == "alice")


def _raises(ctx: Mapping[str, Any]) -> bool:
    raise RuntimeError("backend down")


CUSTOM: dict[str, Any] = {
    "golden_raises": _raises,
    "golden_is_even": lambda ctx: ctx["tool"]["args"]["n"] % 2 == 0,
    "golden_max_items": lambda ctx: len(ctx["tool"]["args"]["items"]) <= ctx["params"]["max"],
    "golden_seed_style": _SeedStyle(),
}


def _documents() -> Iterator[tuple[str, int, dict[str, Any]]]:
    for path in sorted(GOLDEN.glob("*.yaml")):
        for index, doc in enumerate(yaml.safe_load_all(path.read_text())):
            yield path.name, index, doc


CASES = [
    pytest.param(file, index, case, id=f"{file}#{index}: {case['name']}")
    for file, index, doc in _documents()
    for case in doc["cases"]
]
_SETS: dict[tuple[str, int], PolicySet] = {}


@pytest.fixture(scope="module", autouse=True)
def _custom_conditions() -> Iterator[None]:
    for name, fn in CUSTOM.items():
        register_condition(name, fn)
    yield
    for name in CUSTOM:
        unregister_condition(name)


def _policy_set(file: str, index: int) -> PolicySet:
    key = (file, index)
    if key not in _SETS:
        doc = list(yaml.safe_load_all((GOLDEN / file).read_text()))[index]
        _SETS[key] = load_policies(doc["policies"]) if doc["policies"] else PolicySet.empty()
    return _SETS[key]


def _unredact(value: Any) -> Any:
    if value == "<UNKNOWN>":
        return UNKNOWN
    if isinstance(value, dict):
        return {k: _unredact(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_unredact(v) for v in value]
    return value


def _request(case: Mapping[str, Any]) -> AccessRequest:
    who = dict(case.get("principal") or {"user_id": "anyone"})
    principal = Principal(
        user_id=who.get("user_id"),
        roles=tuple(who.get("roles", ())),
        agent_id=who.get("agent_id"),
        claims=who.get("claims", {}),
        authenticated=who.get("authenticated", True),
    )
    if "tool" in case:
        resource = Resource("tool", case["tool"])
    else:
        spec = dict(case["resource"])
        spec["tags"] = frozenset(spec.get("tags", ()))
        resource = Resource(**spec)
    when = case.get("time")
    return AccessRequest(
        principal,
        resource,
        case.get("action", _DEFAULT_ACTION[resource.kind]),
        _unredact(case.get("args", {})),
        time=datetime.fromisoformat(when) if when else None,
    )


def test_golden_files_cover_every_operator() -> None:
    from guard.policy.conditions import OPERATORS

    text = (GOLDEN / "operators.yaml").read_text()
    assert [op for op in sorted(OPERATORS) if f"operator: {op}" not in text] == []


@pytest.mark.parametrize("file,index,case", CASES)
def test_golden_case(file: str, index: int, case: dict[str, Any]) -> None:
    decision = _policy_set(file, index).decide(_request(case))
    got = {"allowed": decision.allowed}
    want = {"allowed": case["allowed"]}
    for key in ("reason", "rule", "policy"):
        if key in case:
            got[key], want[key] = getattr(decision, key), case[key]
    if "matched" in case:
        got["matched"], want["matched"] = list(decision.matched_rules), case["matched"]
    if "errors" in case:
        got["errors"], want["errors"] = len(decision.errors), case["errors"]
    assert got == want, decision
