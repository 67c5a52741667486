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
