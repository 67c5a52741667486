"""`true` is not `1` inside a list or a mapping either. The README: comparing different
types is unknown (fail closed), `true equals 1` being mcp-auth-guard's bug. At the top level
`tool.args.force equals true` with `1` is unknown, but `tool.args.opts equals {force: true}`
with `{"force": 1}` held, and `not_equals` was false, so a deny rule `tool.args.mode
not_equals [true]` spared `[1]`. Now a nested mismatch of kinds is unknown where nothing else
tells the values apart, and false where something does."""

from __future__ import annotations

from typing import Any

import pytest

from guard import AccessRequest, Principal, Resource, load_policies


def _allowed(effect: str, op: str, value: Any, arg: Any) -> bool:
    condition = {"field": "tool.args.a", "operator": op, "value": value}
    policies = load_policies(
        {
            "name": "p",
            "default_effect": "deny" if effect == "allow" else "allow",
            "rules": [{"name": "r", "effect": effect, "conditions": [condition]}],
        }
    )
    request = AccessRequest(Principal("alice"), Resource("tool", "t"), "call", {"a": arg})
    return policies.decide(request).allowed


@pytest.mark.parametrize(
    "op,value,arg,same",
    [
        ("equals", [True], [1], [True]),
        ("equals", {"force": True}, {"force": 1}, {"force": True}),
        ("equals", [[0]], [[False]], [[0]]),
        ("in", [[True], "x"], [1], [True]),
        ("contains", [True], [[1]], [[True]]),
    ],
)
def test_an_allow_rule_does_not_take_true_for_one(op: str, value: Any, arg: Any, same: Any) -> None:
    assert _allowed("allow", op, value, same)
    assert not _allowed("allow", op, value, arg)


@pytest.mark.parametrize(
    "op,value,arg",
    [
        ("not_equals", [True], [1]),
        ("not_equals", {"a": [True]}, {"a": [1]}),
        ("not_in", [[1]], [True]),
    ],
)
def test_a_deny_rule_is_not_spared_by_one_for_true(op: str, value: Any, arg: Any) -> None:
    assert not _allowed("deny", op, value, arg)


def test_values_told_apart_otherwise_are_still_different() -> None:
    assert not _allowed("allow", "equals", [True, "a"], [1, "b"])  # false, not unknown
    assert _allowed("deny", "equals", [True, "a"], [1, "b"])  # a deny rule spares it
    assert _allowed("allow", "equals", [1.0, {"k": None}], [1, {"k": None}])


def test_a_list_holding_both_finds_each() -> None:
    assert _allowed("allow", "in", [[1], [True]], [True])
    assert _allowed("allow", "in", [[True], [1]], [1])
    assert _allowed("deny", "not_in", [[1], [True]], [True])  # in the list: the deny spares it
