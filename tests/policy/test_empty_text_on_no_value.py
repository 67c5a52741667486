"""`contains`, `starts_with` and `ends_with` on a field present without a value
(`user.agent_id` of a caller without an agent, a `null` argument) read no text, as `glob`
and `regex` do: the empty text (`""`, or a list holding it), which any text satisfies, is
unknown there, not true. Read as satisfied, an allow rule `user.agent_id starts_with ""`
("any agent") admitted every caller without an agent, and an allow rule on an argument
admitted `null`; a deny rule with it still fires."""

from __future__ import annotations

from typing import Any

import pytest

from guard import AccessRequest, Principal, Resource, load_policies

OPERATORS = ["contains", "starts_with", "ends_with"]


def _decide(
    effect: str, field: str, operator: str, value: Any, agent: str | None, args: dict[str, Any]
) -> bool:
    condition = {"field": field, "operator": operator, "value": value}
    policies = load_policies(
        {
            "name": "p",
            "default_effect": "deny" if effect == "allow" else "allow",
            "rules": [{"name": "r", "effect": effect, "conditions": [condition]}],
        }
    )
    request = AccessRequest(Principal("alice", agent_id=agent), Resource("tool", "t"), "call", args)
    return policies.decide(request).allowed


@pytest.mark.parametrize("operator", OPERATORS)
def test_an_allow_rule_does_not_admit_a_missing_agent(operator: str) -> None:
    assert _decide("allow", "user.agent_id", operator, "", "bot-1", {})
    assert not _decide("allow", "user.agent_id", operator, "", None, {})


@pytest.mark.parametrize("operator", ["starts_with", "ends_with"])
def test_a_list_holding_the_empty_text_is_unknown_too(operator: str) -> None:
    assert not _decide("allow", "user.agent_id", operator, ["bot-", ""], None, {})
    # without it, plainly false: nothing to match, nothing unknown
    assert _decide("deny", "user.agent_id", operator, ["bot-", "x"], None, {})


@pytest.mark.parametrize("operator", OPERATORS)
def test_an_allow_rule_does_not_admit_a_null_argument(operator: str) -> None:
    assert _decide("allow", "tool.args.path", operator, "", None, {"path": "a.txt"})
    assert not _decide("allow", "tool.args.path", operator, "", None, {"path": None})


@pytest.mark.parametrize("operator", OPERATORS)
def test_a_deny_rule_still_fires_on_a_missing_agent(operator: str) -> None:
    assert not _decide("deny", "user.agent_id", operator, "", None, {})
    # a text the empty text is not: plainly false, the deny rule spares the caller
    assert _decide("deny", "user.agent_id", operator, "bot", None, {})
