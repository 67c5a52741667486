"""Two matcher behaviours kept from mcp-auth-guard that read surprisingly, as the README's
rule-field table states them: `agent_id: "*"` matches a caller without an agent (use the
condition `user.agent_id exists` to allow agents only), and `actions: []` never matches."""

from __future__ import annotations

from guard import AccessRequest, Principal, Resource, load_policies

TOOL = Resource(kind="tool", name="search")
HUMAN = Principal("alice", roles=("user",))
AGENT = Principal("alice", roles=("user",), agent_id="cursor")


def _allowed(policy: str, principal: Principal) -> bool:
    return load_policies(policy).decide(AccessRequest(principal, TOOL, "call")).allowed


def test_agent_id_star_matches_a_caller_without_an_agent_and_exists_does_not() -> None:
    star = """
name: p
default_effect: deny
rules:
  - {name: agents, effect: allow, agents: {agent_id: "*"}}
"""
    assert _allowed(star, AGENT) and _allowed(star, HUMAN)
    only_agents = star.replace(
        'agents: {agent_id: "*"}}',
        'agents: {agent_id: "*"}, conditions: [{field: user.agent_id, operator: exists}]}',
    )
    assert _allowed(only_agents, AGENT) and not _allowed(only_agents, HUMAN)


def test_an_empty_actions_list_never_matches() -> None:
    policy = """
name: p
default_effect: allow
rules:
  - {name: never, effect: deny, actions: []}
"""
    assert _allowed(policy, HUMAN)
    assert not _allowed(policy.replace("actions: []", "actions: [call]"), HUMAN)
