"""Hostile policy inputs that escaped `PolicyError` (found in review).

README: "Loading reports every problem at once, in one `PolicyError`". Two ways out:

1. `_validate._integer` accepts any string whose `.strip().lstrip("+-")` is `isdigit()`,
   then calls `int()` on it: `"+-5"`, `"²"` (isdigit but not a decimal) and a 5,000-digit
   string (over Python's int-conversion limit) raise a bare `ValueError` out of
   `load_policies`, with no file, line or field, and stop the other problems being listed.
2. Sources that are not YAML text (a dict, a builder, JSON decoded by the caller) get no
   nesting limit: YAML stops at 200 levels (`yaml_syntax`, "YAML nested too deeply"), but
   a dict with ~400 nested `not` conditions raises `RecursionError`, and one with 196 to
   ~390 loads but keeps a canonical text that itself no longer loads, so replaying a
   recorded decision against the stored policy text fails.
"""

from __future__ import annotations

from typing import Any

import pytest

from guard.errors import PolicyError
from guard.policy import load_policies


@pytest.mark.parametrize(
    "priority", ["+-5", "²", "9" * 5000], ids=["sign-sign-digit", "superscript-two", "5000-digits"]
)
def test_bad_priority_string_is_a_policy_error(priority: str) -> None:
    text = f"name: p\nrules:\n  - name: r\n    effect: allow\n    priority: '{priority}'\n"
    with pytest.raises(PolicyError) as info:
        load_policies(text)
    assert info.value.problems[0].field == "rules[0].priority"


def _nested(depth: int) -> dict[str, Any]:
    cond: dict[str, Any] = {"field": "tool.args.x", "operator": "equals", "value": 1}
    for _ in range(depth):
        cond = {"not": cond}
    return {"name": "p", "rules": [{"name": "r", "effect": "allow", "conditions": [cond]}]}


def test_deeply_nested_dict_conditions_are_a_policy_error() -> None:
    with pytest.raises(PolicyError):  # RecursionError today
        load_policies(_nested(1000))


def test_a_loaded_dict_policy_reloads_from_its_stored_text() -> None:
    from guard.policy._validate import MAX_CONDITION_DEPTH

    # as deep as any source may nest conditions: its canonical text loads again
    policies = load_policies(_nested(MAX_CONDITION_DEPTH - 1))
    reloaded = load_policies(policies.policies[0].text)  # replay reloads the stored text
    assert reloaded.hash == policies.hash
    with pytest.raises(PolicyError, match="nested more than"):  # YAML's limit would not
        load_policies(_nested(197))
