"""`contains` / `not_contains` on a mapping-valued field (`tool.args`, `user.claims`,
`tool.metadata`) decides differently from mcp-auth-guard 1.0.0, and the README's
differences table does not say so.

mcp-auth-guard 1.0.0 evaluates `condition_value in str(field_value)`, i.e. a substring test
over the mapping's text (keys *and* values). MCP Guard (`_operators._contains`) tests only
for a *key*. The README lists "`contains` on a list tests membership" as a difference, but
nothing about mappings, and the change opens access in both directions that matter:

- a deny rule `tool.args contains "DROP TABLE"` no longer fires on `{"sql": "DROP TABLE x"}`;
- an allow rule `tool.args not_contains ".."` now admits `{"path": "../../etc/passwd"}`.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.compat.test_differential import USER, _both, _tool


def _policy(effect: str, op: str, value: Any, field: str = "tool.args") -> list[dict[str, Any]]:
    return [
        {
            "name": "p",
            "default_effect": "allow" if effect == "deny" else "deny",
            "rules": [
                {
                    "name": "r",
                    "effect": effect,
                    "conditions": [{"field": field, "operator": op, "value": value}],
                }
            ],
        }
    ]


def test_deny_rule_contains_on_tool_args_still_denies() -> None:
    theirs, ours = _both(_policy("deny", "contains", "DROP TABLE"), _tool(sql="DROP TABLE users"))
    assert theirs == (False, "r")  # 1.0.0: "DROP TABLE" in str({'sql': 'DROP TABLE users'})
    assert ours == theirs, "deny rule on tool.args no longer fires (key-only test)"


def test_allow_rule_not_contains_on_tool_args_still_refuses_traversal() -> None:
    theirs, ours = _both(_policy("allow", "not_contains", ".."), _tool(path="../../etc/passwd"))
    assert theirs == (False, None)  # 1.0.0: '..' occurs in the args' text: the allow rule fails
    assert ours == theirs, "allow rule admits a path traversal 1.0.0 refused"


@pytest.mark.parametrize("field", ["user.claims", "tool.metadata"])
def test_contains_on_other_mappings(field: str) -> None:
    auth = {**USER, "claims": {"type": "contractor"}}
    res = _tool()
    res["resource"]["metadata"] = {"type": "contractor"}
    theirs, ours = _both(_policy("deny", "contains", "contractor", field), res, auth)
    assert theirs == (False, "r")
    assert ours == theirs


def test_readme_lists_the_mapping_difference() -> None:
    from pathlib import Path

    readme = Path(__file__).resolve().parents[2].joinpath("README.md").read_text()
    table = readme[readme.index("### Behaviour differences from mcp-auth-guard 1.0.0") :]
    table = table[: table.index("<!-- /section:compat -->")]
    assert "mapping" in table or "tool.args contains" in table, (
        "contains on a mapping changed meaning (substring of its text -> has the key) "
        "but the differences table only mentions lists"
    )
