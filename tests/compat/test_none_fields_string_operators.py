"""String operators on an attribute that is present but `None` (`user.agent_id` for a caller
without an agent, `tool.namespace` for an unmounted tool) decide differently from 1.0.0, and
the README's differences table does not cover it.

1.0.0 compares the text `"None"`: `user.agent_id starts_with "untrusted-"` is false, so a
deny rule aimed at untrusted agents leaves human callers alone. MCP Guard makes the
condition *unknown* (`_operators._text` raises `Indeterminate` for null), so the deny rule
applies to **every caller without an agent**. The differences table speaks of a "missing
field" and of "comparing different types"; `guard/policy/_fields.py` says such a `None`
attribute is *not* missing and "compares like any value", which `equals` / `in` honour and
`contains` / `starts_with` / `ends_with` / `regex` do not.
"""

from __future__ import annotations

import pytest

from tests.compat.test_differential import USER, _both, _tool


@pytest.mark.parametrize(
    "field,op,value",
    [
        ("user.agent_id", "starts_with", "untrusted-"),
        ("user.agent_id", "contains", "scraper"),
        ("user.agent_id", "regex", "bot-.*"),
        ("tool.namespace", "starts_with", "admin"),
    ],
)
def test_deny_rule_on_a_none_attribute(field: str, op: str, value: str) -> None:
    policy = [
        {
            "name": "p",
            "default_effect": "allow",
            "rules": [
                {
                    "name": "untrusted",
                    "effect": "deny",
                    "conditions": [{"field": field, "operator": op, "value": value}],
                }
            ],
        }
    ]
    theirs, ours = _both(policy, _tool(), {**USER, "agent_id": None})
    assert theirs == (True, None)
    assert ours == theirs, "a caller without an agent / a tool without a namespace is denied"


@pytest.mark.parametrize(
    "pattern,theirs_allowed",
    [("^$", False), ("^[a-z0-9_]*$", False), ("[a-z0-9_]*", True), ("(admin)?", True)],
)
def test_a_regex_matching_the_empty_text_is_false_on_a_none_attribute(
    pattern: str, theirs_allowed: bool
) -> None:
    """The README: a `regex` on an attribute present without a value is false. A regex
    that matches the empty text held here, so an allow rule `tool.args.label regex
    "^[a-z0-9_]*$"` admitted `{"label": null}`, which 1.0.0 refused (`None` is not
    lower-case; its unanchored `re.match` found an empty prefix in other patterns)."""
    condition = {"field": "tool.args.label", "operator": "regex", "value": pattern}
    policy = [{"name": "p", "rules": [{"name": "r", "effect": "allow", "conditions": [condition]}]}]
    theirs, ours = _both(policy, _tool(label=None))
    assert theirs[0] is theirs_allowed
    assert ours == (False, None)
    agent = {**condition, "field": "user.agent_id"}
    policy = [{"name": "p", "rules": [{"name": "r", "effect": "allow", "conditions": [agent]}]}]
    assert _both(policy, _tool(), {**USER, "agent_id": None})[1] == (False, None)


@pytest.mark.parametrize("pattern", [".*", "N.*", "[a-z]*"])
def test_a_deny_rule_whose_regex_a_null_could_satisfy_still_fires(pattern: str) -> None:
    """A null is unknown to such a pattern, not false: a deny rule `user.agent_id regex
    ".*"` still refuses a caller without an agent, as 1.0.0 did (its `re.match` found
    `None` or an empty prefix), instead of a null slipping past a deny rule."""
    condition = {"field": "user.agent_id", "operator": "regex", "value": pattern}
    policy = [
        {
            "name": "p",
            "default_effect": "allow",
            "rules": [{"name": "d", "effect": "deny", "conditions": [condition]}],
        }
    ]
    theirs, ours = _both(policy, _tool(), {**USER, "agent_id": None})
    assert theirs == (False, "d")
    assert ours == theirs
