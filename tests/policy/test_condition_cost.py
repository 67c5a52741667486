"""What a condition costs on a hostile value is bounded: a value nested deeper than records
keep values, or holding more items than a condition looks at, is unknown (fail closed)
before any operator walks it. Before, a million-key argument cost every condition on it a
walk of every key (~0.2 s), and an argument nested 600 levels raised RecursionError (a
denial for `error`, where replaying its record decides by the rules).

Likewise ordering a huge integer (an in-process caller can send one of a million digits)
against a decimal bound: it was converted to a Decimal, quadratic in its digits
(`10**1_000_000 gt 5` took 18 s, holding up the server). Beyond every bound of fewer
digits, it now orders as a power of ten of its sign: exact, and cheap."""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping
from typing import Any

from guard import AccessRequest, Principal, Resource, load_policies
from guard.audit import redact
from guard.policy import conditions

ALICE = Principal("alice", ("user",))
TOOL = Resource("tool", "t")


def _policies(*conds: dict[str, Any]) -> Any:
    rule = {"name": "no", "effect": "deny", "tools": {"names": ["t"]}}
    rule["conditions"] = [{"any": list(conds)}]
    return load_policies({"name": "p", "default_effect": "allow", "rules": [rule]})


class Counting(Mapping[str, int]):
    """A wide mapping that counts the items anyone reads from it."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.read = 0

    def __len__(self) -> int:
        return self.size

    def __iter__(self) -> Iterator[str]:
        for i in range(self.size):
            self.read += 1
            yield str(i)

    def __getitem__(self, key: str) -> int:
        self.read += 1
        return int(key)


def nested(depth: int) -> Any:
    value: Any = "leaf"
    for _ in range(depth):
        value = {"a": value}
    return value


def test_a_wide_value_is_unknown_without_reading_it() -> None:
    policies = _policies(
        {"field": "tool.args.x", "operator": "len_gte", "value": 10**9},
        {"field": "tool.args.x", "operator": "path_within", "value": "/tmp"},
    )
    wide = Counting(1_000_000)
    decision = policies.decide(AccessRequest(ALICE, TOOL, "call", {"x": wide}))
    assert (decision.allowed, decision.reason, decision.rule) == (False, "rule", "no")
    assert "more than" in decision.errors[0]
    assert wide.read <= conditions.MAX_ITEMS


def test_items_are_counted_at_every_depth() -> None:
    policies = _policies({"field": "tool.args", "operator": "len_gte", "value": 10**9})
    many = {f"k{i}": [i, i] for i in range(conditions.MAX_ITEMS // 2)}
    assert not policies.decide(AccessRequest(ALICE, TOOL, "call", many)).allowed
    few = {f"k{i}": [i, i] for i in range(conditions.MAX_ITEMS // 4)}
    assert policies.decide(AccessRequest(ALICE, TOOL, "call", few)).allowed


def test_deep_nesting_is_unknown_not_an_error() -> None:
    policies = _policies({"field": "tool.args.x", "operator": "equals", "value": "never"})
    decision = policies.decide(AccessRequest(ALICE, TOOL, "call", {"x": nested(600)}))
    assert (decision.allowed, decision.reason, decision.rule) == (False, "rule", "no")
    assert "too deep" in decision.errors[0]


def test_depth_is_counted_as_records_count_it() -> None:
    """A mapping `MAX_DEPTH` keys below the arguments is recorded as a marker: unknown here
    too, whatever the field's own depth; one level less is decided on."""
    for field, base in (("tool.args", 0), ("tool.args.x", 1), ("tool.args.x.a.a", 3)):
        policies = _policies({"field": field, "operator": "len_gte", "value": 10**9})
        # `nested(n)` under x: its innermost mapping is n keys below the arguments
        kept = {"x": nested(redact.MAX_DEPTH - 1)}
        cut = {"x": nested(redact.MAX_DEPTH)}
        assert redact.Redactor().redact(kept)[1] == ()
        assert redact.Redactor().redact(cut)[1] != ()
        assert policies.decide(AccessRequest(ALICE, TOOL, "call", kept)).allowed, base
        assert not policies.decide(AccessRequest(ALICE, TOOL, "call", cut)).allowed, base


def test_a_scalar_below_a_cut_mapping_is_unknown() -> None:
    field = "tool.args." + ".".join(["a"] * (redact.MAX_DEPTH + 1))
    policies = _policies({"field": field, "operator": "equals", "value": "never"})
    args = nested(redact.MAX_DEPTH + 1)  # "leaf", 101 keys down: recorded under a marker
    assert redact.Redactor().redact(args)[1] != ()
    decision = policies.decide(AccessRequest(ALICE, TOOL, "call", args))
    assert (decision.allowed, decision.reason) == (False, "rule")
    assert "too deep" in decision.errors[0]


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
