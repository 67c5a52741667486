"""`agents: {user_id: ""}` (or `agent_id: ""`) means "not given" in mcp-auth-guard 1.0.0
(`if agent_matcher.user_id:` is false for ""), so the rule applies to every caller. MCP Guard
turns the bare string into the pattern list `("",)`, which matches only a caller whose id is
empty or missing. A deny rule written that way (say, a template whose variable expanded to
nothing) stops applying to everybody: fail open, and not in the README's differences.
(README: "empty lists (`names: []`) mean 'not given'", nothing on empty strings.)
"""

from __future__ import annotations

import pytest

from tests.compat.test_differential import USER, _both, _tool


@pytest.mark.parametrize("key", ["user_id", "agent_id"])
def test_empty_string_id_is_not_given(key: str) -> None:
    policy = [
        {
            "name": "p",
            "default_effect": "allow",
            "rules": [{"name": "lockdown", "effect": "deny", "agents": {key: ""}}],
        }
    ]
    caller = {**USER, "agent_id": "claude"}
    theirs, ours = _both(policy, _tool(), caller)
    assert theirs == (False, "lockdown")  # 1.0.0: the empty matcher is skipped: deny everyone
    assert ours == theirs
