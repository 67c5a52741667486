"""The additions that are plain keys (`combining`, `resource_templates`, `resources.tags`)
load in mcp-auth-guard 1.0.0, whose models ignore unknown keys, and decide differently
there: a policy written for MCP Guard and rolled back to it widens (found in review: the
README said it would not load)."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from tests.compat.test_differential import _both, _tool, seed_engine


def _res() -> dict[str, Any]:
    return {
        "resource_type": "resources",
        "action": "read",
        "method": "resources/read",
        "resource": {"name": "public://readme", "tags": ["public"]},
    }


CASES = {
    "combining": (
        {
            "name": "p",
            "combining": "deny_overrides",
            "rules": [
                {"name": "ok", "effect": "allow", "priority": 200},
                {"name": "no", "effect": "deny"},
            ],
        },
        _tool(),
    ),
    "resource_templates": (
        {
            "name": "p",
            "default_effect": "allow",
            "rules": [{"name": "tpl", "effect": "deny", "resource_templates": {"names": ["x"]}}],
        },
        _tool(),
    ),
    "resources.tags": (
        {
            "name": "p",
            "default_effect": "allow",
            "rules": [{"name": "secret", "effect": "deny", "resources": {"tags": ["secret"]}}],
        },
        _res(),
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_policy_with_a_new_key_loads_in_mcp_auth_guard_and_decides_otherwise(case: str) -> None:
    """What the README's differences section warns of (found in review: it said such a
    policy would not load there)."""
    policy, request = CASES[case]
    seed_engine([copy.deepcopy(policy)])  # loads: the key is ignored
    theirs, ours = _both([policy], request)
    assert theirs != ours


def test_the_readme_warns_that_new_keys_are_ignored_there() -> None:
    from pathlib import Path

    readme = Path(__file__).resolve().parents[2].joinpath("README.md").read_text()
    assert "mcp-auth-guard ignores keys it does not know" in readme
    assert "does not load in mcp-auth-guard" not in readme
