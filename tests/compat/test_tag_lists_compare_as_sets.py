"""`tool.tags equals [...]` (and `not_equals`, `in`, `not_in` with lists of tags) compares
the tags as a set.

mcp-auth-guard 1.0.0 compared the tag list in the order it was given; its middleware filled
it from FastMCP's tag *set*, so the order, and the answer, changed from one process to the
next. MCP Guard keeps a component's tags as a set, read as a sorted tuple, and compared it
with the list as written: `tool.tags equals [safe, danger]` never held, so a deny rule
written that way never fired, whatever the order (found in review).
"""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from tests.compat.test_differential import _both

TAGS = ["safe", "danger", "public", "beta"]


def _tagged(tags: list[str]) -> dict[str, Any]:
    return {
        "resource_type": "tools",
        "resource": {"name": "t", "tags": tags},
        "action": "call",
        "method": "tools/call",
    }


def _deny_if(op: str, value: Any) -> list[dict[str, Any]]:
    condition = {"field": "tool.tags", "operator": op, "value": value}
    return [
        {
            "name": "p",
            "default_effect": "allow",
            "rules": [{"name": "r", "effect": "deny", "conditions": [condition]}],
        }
    ]


def test_deny_rule_on_the_tags_as_written_fires() -> None:
    theirs, ours = _both(_deny_if("equals", ["safe", "danger"]), _tagged(["safe", "danger"]))
    assert theirs == (False, "r")
    assert ours == theirs


def test_tags_in_a_list_of_tag_lists() -> None:
    policy = _deny_if("in", [["safe", "danger"], ["beta"]])
    assert _both(policy, _tagged(["safe", "danger"]))[1] == (False, "r")
    assert _both(_deny_if("not_in", [["safe", "danger"]]), _tagged(["danger", "safe"]))[1] == (
        True,
        None,
    )


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.sampled_from(TAGS), max_size=3, unique=True),
    st.lists(st.sampled_from(TAGS), max_size=3, unique=True),
    st.sampled_from(["equals", "not_equals"]),
)
def test_tags_compare_as_a_set(written: list[str], actual: list[str], op: str) -> None:
    """Ours holds for every order of the same tags; the seed agrees whenever its answer did
    not hang on the order (different sets, or the tags in the order written)."""
    policy = _deny_if(op, written)
    theirs, ours = _both(policy, _tagged(actual))
    holds = (set(written) == set(actual)) is (op == "equals")
    assert ours == ((False, "r") if holds else (True, None))
    if set(written) != set(actual):
        assert ours == theirs
    assert _both(policy, _tagged(written))[0] == _both(policy, _tagged(written))[1]
