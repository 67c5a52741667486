"""Ordering a huge integer (an in-process caller can send one of a million digits) against
a decimal bound converted it to a Decimal, quadratic in its digits: `10**1_000_000 gt 5`
took 18 s, holding up the server. Beyond every bound of fewer digits, it now orders as a
power of ten of its sign: exact, and cheap."""

from __future__ import annotations

import time
from typing import Any

from guard import AccessRequest, Principal, Resource, load_policies

ALICE = Principal("alice", ("user",))
TOOL = Resource("tool", "t")


def _policies(*conds: dict[str, Any]) -> Any:
    rule = {"name": "no", "effect": "deny", "tools": {"names": ["t"]}}
    rule["conditions"] = [{"any": list(conds)}]
    return load_policies({"name": "p", "default_effect": "allow", "rules": [rule]})


def test_a_huge_integer_is_ordered_exactly_and_cheaply() -> None:
    policies = _policies(
        {"field": "tool.args.n", "operator": "gt", "value": 5},
        {"field": "tool.args.m", "operator": "lte", "value": -7.5},
        {"field": "tool.args.k", "operator": "between", "value": [-1, "1e3599"]},
    )
    small = AccessRequest(ALICE, TOOL, "call", {"n": 1, "m": 10**3000, "k": -(10**3000)})
    start = time.perf_counter()
    baseline = policies.decide(small)
    base = time.perf_counter() - start
    assert baseline.allowed
    for args in ({"n": 10**400_000}, {"m": -(10**400_000)}):
        huge = {"n": 1, "m": 1, "k": -2, **args}
        start = time.perf_counter()
        decision = policies.decide(AccessRequest(ALICE, TOOL, "call", huge))
        took = time.perf_counter() - start
        assert (decision.allowed, decision.reason, decision.errors) == (False, "rule", ())
        assert took < 0.05 + 20 * base  # the Decimal conversion took ~2 s here
    huge = {"n": -(10**400_000), "m": 10**400_000, "k": 10**400_000}
    assert policies.decide(AccessRequest(ALICE, TOOL, "call", huge)).allowed


def test_against_a_bound_as_long_it_is_unknown() -> None:
    policies = _policies({"field": "tool.args.n", "operator": "lt", "value": "1e3600"})
    decision = policies.decide(AccessRequest(ALICE, TOOL, "call", {"n": 10**400_000}))
    assert (decision.allowed, decision.reason) == (False, "rule")  # fail closed
    assert "3,600 digits" in decision.errors[0]
