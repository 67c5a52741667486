"""`glob` on a field present without a value (`user.agent_id` of a caller without an agent,
a `null` argument) reads no text, as `regex` does: a glob the empty text satisfies (`*`)
is unknown there, not true. Read as the text `""`, an allow rule `user.agent_id glob "*"`
("any agent") admitted every caller without an agent, and an allow rule on an argument
admitted `null`; a deny rule such as `user.agent_id glob "*"` still fires."""

from __future__ import annotations

from typing import Any

import pytest

from guard import AccessRequest, Principal, Resource, load_policies


def _decide(
    effect: str, field: str, pattern: str | list[str], agent: str | None, args: dict[str, Any]
) -> bool:
    condition = {"field": field, "operator": "glob", "value": pattern}
    policies = load_policies(
        {
            "name": "p",
            "default_effect": "deny" if effect == "allow" else "allow",
            "rules": [{"name": "r", "effect": effect, "conditions": [condition]}],
        }
    )
    request = AccessRequest(Principal("alice", agent_id=agent), Resource("tool", "t"), "call", args)
    return policies.decide(request).allowed


@pytest.mark.parametrize("pattern", ["*", ["bot-*", "*"]])
def test_an_allow_rule_does_not_admit_a_missing_agent(pattern: str | list[str]) -> None:
    assert _decide("allow", "user.agent_id", "*", "bot-1", {})
    assert not _decide("allow", "user.agent_id", pattern, None, {})


def test_an_allow_rule_does_not_admit_a_null_argument() -> None:
    assert _decide("allow", "tool.args.path", "*", None, {"path": "a.txt"})
    assert not _decide("allow", "tool.args.path", "*", None, {"path": None})


def test_a_deny_rule_still_fires_on_a_missing_agent() -> None:
    assert not _decide("deny", "user.agent_id", "*", None, {})
    # a glob the empty text does not satisfy is plainly false: the deny rule spares it
    assert _decide("deny", "user.agent_id", "bot-*", None, {})
