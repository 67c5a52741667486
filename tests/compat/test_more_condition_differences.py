"""Condition semantics that differ from mcp-auth-guard 1.0.0 and that the README's
differences did not mention (found in review); each asserts both sides, as the README
now states them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.compat.test_differential import USER, _both, _tool


def _one(effect: str, condition: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        {
            "name": "p",
            "default_effect": "allow" if effect == "deny" else "deny",
            "rules": [{"name": "r", "effect": effect, "conditions": [condition]}],
        }
    ]


def test_two_numeric_strings_compare_as_numbers() -> None:
    policy = _one("deny", {"field": "tool.args.limit", "operator": "gt", "value": "100"})
    theirs, ours = _both(policy, _tool(limit="20"))
    assert theirs == (False, "r")  # "20" > "100" as text
    assert ours == (True, None)


@pytest.mark.parametrize("op,theirs", [("in", (False, None)), ("not_in", (True, "r"))])
def test_in_on_a_list_field_is_unknown(op: str, theirs: tuple[bool, str | None]) -> None:
    condition = {"field": "user.roles", "operator": op, "value": ["admin", "moderator"]}
    admin = {**USER, "roles": ["admin"]}
    assert _both(_one("allow", condition), _tool(), admin) == (theirs, (False, None))
    assert _both(_one("deny", condition), _tool(), admin)[1] == (False, "r")  # fail closed


@pytest.mark.parametrize(
    "field,op,value,agent_id",
    [
        ("user.agent_id", "contains", "one", None),  # "one" in "None"
        ("user.agent_id", "starts_with", "No", None),
        ("tool.args", "contains", "None", None),  # {'x': None} as text
    ],
)
def test_no_value_has_no_text(field: str, op: str, value: str, agent_id: str | None) -> None:
    policy = _one("deny", {"field": field, "operator": op, "value": value})
    theirs, ours = _both(policy, _tool(x=None), {**USER, "agent_id": agent_id})
    assert theirs == (False, "r")
    assert ours == (True, None)


def test_a_number_with_contains_is_unknown() -> None:
    policy = _one("deny", {"field": "tool.args.zip", "operator": "contains", "value": 75})
    theirs, ours = _both(policy, _tool(zip="75001"))
    assert theirs == (True, None)  # `75 in "75001"` raised there: the deny rule was skipped
    assert ours == (False, "r")


def test_the_readme_states_them() -> None:
    readme = Path(__file__).resolve().parents[2].joinpath("README.md").read_text()
    compat = readme[readme.index("### Behaviour differences from mcp-auth-guard 1.0.0") :]
    assert '`"20" gt "100"` holds' in compat
    assert "`user.roles in [admin, moderator]`" in compat
    assert "`tool.tags equals [safe, danger]`" in compat
    assert "with `contains` it raised there, and is unknown here" in compat
    assert "skips its\n`None` values" in compat


def test_contains_on_a_list_finds_its_items_and_is_unknown_for_text_within_one() -> None:
    """A deny rule `tool.args.sqls contains "DROP"` fired there on ["DROP TABLE t"] (the
    list compared as text), and did not fire here once `contains` on a list meant
    membership: a migrated deny rule stopped denying. The text within an item is now
    unknown: such a deny rule fires again, and an allow rule `user.roles contains admin`
    still does not grant `superadmin` (there it did)."""

    def policy(effect: str, field: str, operator: str = "contains") -> list[dict[str, Any]]:
        return _one(effect, {"field": field, "operator": operator, "value": "DROP"})

    sqls = _tool(sqls=["DROP TABLE t"])
    assert _both(policy("deny", "tool.args.sqls"), sqls) == ((False, "r"), (False, "r"))
    assert _both(policy("deny", "tool.args"), sqls) == ((False, "r"), (False, "r"))
    # an allow rule on such a list grants nothing there (not_contains: the text is found)
    # nor here (unknown)
    allow = policy("allow", "tool.args.sqls", "not_contains")
    assert _both(allow, sqls)[1][0] is False
    readme = Path(__file__).resolve().parents[2].joinpath("README.md").read_text()
    assert "unknown when the text is within an item" in readme


@pytest.mark.parametrize(
    "sqls,value",
    [([{"sql": "DROP TABLE t"}], "DROP"), ([["DROP TABLE t"]], "DROP"), ([7, 17], "7")],
)
def test_contains_finds_text_within_items_that_are_not_strings(sqls: Any, value: str) -> None:
    """The text within a list's item is unknown whatever the item: a deny rule `tool.args.
    sqls contains "DROP"` fired there on [{"sql": "DROP TABLE t"}] and [["DROP TABLE t"]]
    (the list's text), and was skipped here, where only string items were searched."""
    policy = _one("deny", {"field": "tool.args.sqls", "operator": "contains", "value": value})
    assert _both(policy, _tool(sqls=sqls)) == ((False, "r"), (False, "r"))


@pytest.mark.parametrize(
    "value,given",
    [([True, 5], 1), ([False, "x"], 0), ([1, "x"], True), ([0.0], False)],
)
def test_in_a_list_mixing_booleans_and_numbers_is_unknown_not_false(
    value: list[Any], given: Any
) -> None:
    """`1 in [true, 5]` was false here and true there (Python's `1 == True`): a deny rule
    there fired, here it was skipped. As the README says of other mismatches: unknown,
    so a deny rule applies and an allow rule does not."""
    deny = _one("deny", {"field": "tool.args.x", "operator": "in", "value": value})
    theirs, ours = _both(deny, _tool(x=given))
    assert theirs == (False, "r")
    assert ours == (False, "r")
    allow = _one("allow", {"field": "tool.args.x", "operator": "in", "value": value})
    assert _both(allow, _tool(x=given))[1] == (False, None)


@pytest.mark.parametrize(
    "field,args",
    [
        ("tool.args.ports", {"ports": ["22", "80"]}),  # arguments arrive as strings
        ("tool.args.ports", {"ports": [{"port": 22}]}),
        ("tool.args", {"port": 22}),
        ("tool.args", {"port": "22"}),
    ],
)
def test_a_number_with_contains_is_unknown_in_lists_and_mappings_too(
    field: str, args: dict[str, Any]
) -> None:
    """The README: a number as the value of `contains` raised there and is unknown here.
    In a list or a mapping that holds it only as text (or deeper), it was false: an allow
    rule `not_contains 22` admitted what 1.0.0 refused, and a deny rule `contains 22`
    was skipped on `["22"]`."""
    allow = _one("allow", {"field": field, "operator": "not_contains", "value": 22})
    theirs, ours = _both(allow, _tool(**args))
    assert theirs == (False, None)  # `22 in "..."` raised there: the allow rule was skipped
    assert ours == (False, None)
    deny = _one("deny", {"field": field, "operator": "contains", "value": 22})
    assert _both(deny, _tool(**args))[1] == (False, "r")


def test_a_number_with_contains_is_still_membership_in_a_list() -> None:
    for effect, op, ports, decided in [
        ("deny", "contains", [22, 80], (False, "r")),
        ("allow", "not_contains", [80, 443], (True, "r")),
    ]:
        policy = _one(effect, {"field": "tool.args.ports", "operator": op, "value": 22})
        assert _both(policy, _tool(ports=ports))[1] == decided


@pytest.mark.parametrize(
    "field,value,args,agent_id",
    [
        ("tool.args", ["a", "b"], {"x": "a"}, "bot"),  # a list in a mapping: keys are text
        ("user.agent_id", 22, {}, None),  # a number in no value
    ],
)
def test_not_contains_that_raised_there_is_unknown_here(
    field: str, value: Any, args: dict[str, Any], agent_id: str | None
) -> None:
    """Found in review: these were definitely true here (`not_contains`), where 1.0.0
    raised and skipped the rule: an allow rule `tool.args not_contains [a, b]` admitted
    the call. Unknown skips the allow rule and applies a deny rule."""
    user = {**USER, "agent_id": agent_id}
    allow = _one("allow", {"field": field, "operator": "not_contains", "value": value})
    theirs, ours = _both(allow, _tool(**args), user)
    assert theirs == (False, None)
    assert ours == (False, None)
    deny = _one("deny", {"field": field, "operator": "contains", "value": value})
    assert _both(deny, _tool(**args), user)[1] == (False, "r")
