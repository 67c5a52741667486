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


def test_contains_on_a_list_argument_is_membership_search_the_mapping_instead() -> None:
    def policy(field: str) -> list[dict[str, Any]]:
        return _one("deny", {"field": field, "operator": "contains", "value": "DROP"})

    sqls = _tool(sqls=["DROP TABLE t"])
    assert _both(policy("tool.args.sqls"), sqls) == ((False, "r"), (True, None))
    assert _both(policy("tool.args"), sqls) == ((False, "r"), (False, "r"))
    readme = Path(__file__).resolve().parents[2].joinpath("README.md").read_text()
    assert '`tool.args.sqls contains "DROP"` no longer finds' in readme
