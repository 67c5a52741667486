"""Two more condition semantics that changed without a line in the differences table.

- `starts_with` / `ends_with` with a list value: 1.0.0 tests `str(field).startswith(str(list))`
  (never true); MCP Guard tests "one of them". A deny rule `tool.args.path starts_with
  ["/etc", "/root"]` was inert in 1.0.0 and denies now.
- Fields with a list index (`tool.args.paths.0`): 1.0.0 only walks mappings, so the field
  is `None` (and `"None"` for string operators); MCP Guard indexes the list.

Both are bugs there, fixed here, and listed in the README's differences table (found in
review: they were not).
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.compat.test_differential import _both, _tool


@pytest.mark.parametrize(
    "condition,args",
    [
        (
            {"field": "tool.args.path", "operator": "starts_with", "value": ["/etc", "/root"]},
            {"path": "/etc/passwd"},
        ),
        (
            {"field": "tool.args.paths.0", "operator": "starts_with", "value": "/etc"},
            {"paths": ["/etc/shadow"]},
        ),
    ],
)
def test_decides_as_the_differences_table_says(
    condition: dict[str, Any], args: dict[str, Any]
) -> None:
    policy = [
        {
            "name": "p",
            "default_effect": "allow",
            "rules": [{"name": "r", "effect": "deny", "conditions": [condition]}],
        }
    ]
    theirs, ours = _both(policy, _tool(**args))
    assert theirs == (True, None)  # the deny rule never fired there
    assert ours == (False, "r")


def test_the_differences_table_lists_both() -> None:
    from pathlib import Path

    readme = Path(__file__).resolve().parents[2].joinpath("README.md").read_text()
    table = readme[readme.index("### Behaviour differences from mcp-auth-guard 1.0.0") :]
    assert "`starts_with` / `ends_with` with a list" in table
    assert "A list index in a field" in table


def test_a_context_without_a_timestamp_is_decided_at_the_current_time() -> None:
    """`request.timestamp` of a `ResourceContext` without one: `None` in 1.0.0's engine (a
    comparison raised, so the rule never applied), the decision's clock here. Its live
    middleware always set one, so only direct engine calls differ; the fields list said
    so, the differences table did not."""
    condition = {"field": "request.timestamp", "operator": "gt", "value": 1_000_000_000}
    policy = [{"name": "p", "rules": [{"name": "r", "effect": "allow", "conditions": [condition]}]}]
    theirs, ours = _both(policy, _tool())
    assert theirs == (False, None)
    assert ours == (True, "r")
    from pathlib import Path

    readme = Path(__file__).resolve().parents[2].joinpath("README.md").read_text()
    table = readme[readme.index("### Behaviour differences from mcp-auth-guard 1.0.0") :]
    assert "`ResourceContext` without a `timestamp`" in table
