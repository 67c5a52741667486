"""Differential test: `PolicySet.decide` against the linear reference evaluator
(`tests/policy/reference.py`) on generated policies and requests.

CI runs 10,000 generated policy sets (each decided against several requests). For a long
local run (past the suite's 300 s per-test timeout):
`GUARD_PROPERTY_EXAMPLES=1000000 python3 -m pytest --timeout=0 tests/policy/test_property.py`.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from random import Random
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from guard.policy.model import AccessRequest, Principal, Resource
from guard.policy.policyset import PolicySet
from guard.policy.spec import (
    AgentMatch,
    Condition,
    ConditionGroup,
    ConditionNode,
    PolicySpec,
    PromptMatch,
    ResourceMatch,
    RuleSpec,
    TemplateMatch,
    ToolMatch,
)

sys.path.insert(0, str(Path(__file__).parent))  # the reference sits beside this test
import reference

EXAMPLES = int(os.environ.get("GUARD_PROPERTY_EXAMPLES", "10000"))

NAMES = ["get_x", "get_y", "set_y", "foo_x", "bar", "summarize", "svc-1"]
NAME_PATTERNS = ["get_*", "*_x", "[gs]et_y", "*", "s*e", "ba?", "foo_x"]
URIS = ["data://a", "pub://b", "db://m/ro", "db://m/rw", "users://{id}"]
URI_PATTERNS = ["db://*/ro", "*://b", "data://*", "*"]
TAGS = ["safe", "fs", "net"]
ROLES = ["admin", "user", "ops"]
USERS = ["alice", "bob", "carol", "abc", "svc-1"]
TEMPLATES = ["users://{id}", "db://{name}/ro"]
ACTIONS = ["call", "read", "get", "list", "cx", "execute"]


def some(rnd: Random, values: list[str], max_size: int = 2) -> tuple[str, ...]:
    return tuple(rnd.sample(values, rnd.randint(1, max_size)))


def maybe(rnd: Random, make: Callable[[], Any], chance: float = 0.5) -> Any:
    return make() if rnd.random() < chance else None


def agents(rnd: Random) -> AgentMatch:
    return AgentMatch(
        user_id=maybe(rnd, lambda: some(rnd, ["alice", "a*", "*", "bob", "svc-*"])),
        roles=maybe(rnd, lambda: some(rnd, [*ROLES, "*"])),
        agent_id=maybe(rnd, lambda: some(rnd, ["bot", "b*"]), 0.3),
        patterns=maybe(rnd, lambda: some(rnd, ["svc-*", "c*"]), 0.3),
    )


def tools(rnd: Random) -> ToolMatch:
    return ToolMatch(
        names=maybe(rnd, lambda: some(rnd, NAMES)),
        patterns=maybe(rnd, lambda: some(rnd, NAME_PATTERNS)),
        namespaces=maybe(rnd, lambda: some(rnd, ["files", "net"]), 0.2),
        tags=maybe(rnd, lambda: some(rnd, TAGS), 0.3),
    )


def resources(rnd: Random) -> ResourceMatch:
    return ResourceMatch(
        uris=maybe(rnd, lambda: some(rnd, URIS)),
        patterns=maybe(rnd, lambda: some(rnd, URI_PATTERNS)),
        schemes=maybe(rnd, lambda: some(rnd, ["pub", "db", "data"]), 0.3),
        tags=maybe(rnd, lambda: some(rnd, TAGS), 0.3),
    )


def templates(rnd: Random) -> TemplateMatch:
    return TemplateMatch(
        uri_templates=maybe(rnd, lambda: some(rnd, TEMPLATES)),
        names=maybe(rnd, lambda: some(rnd, NAMES), 0.3),
        patterns=maybe(rnd, lambda: some(rnd, ["users://*", "*"]), 0.3),
        tags=maybe(rnd, lambda: some(rnd, TAGS), 0.3),
    )


def prompts(rnd: Random) -> PromptMatch:
    return PromptMatch(
        names=maybe(rnd, lambda: some(rnd, NAMES)),
        patterns=maybe(rnd, lambda: some(rnd, NAME_PATTERNS)),
        tags=maybe(rnd, lambda: some(rnd, TAGS), 0.3),
    )


VALUES: list[Any] = [1, 5, 7, "7", "x", "alice"]


def condition(rnd: Random, depth: int = 0) -> ConditionNode:
    roll = rnd.random()
    if depth < 2 and roll < 0.25:
        if rnd.random() < 0.3:
            return ConditionGroup("not", (condition(rnd, depth + 1),))
        items = tuple(condition(rnd, depth + 1) for _ in range(rnd.randint(1, 3)))
        return ConditionGroup(rnd.choice(["all", "any"]), items)
    if roll < 0.4:
        return Condition("tool.args.a", "exists", None)
    if roll < 0.55:
        return Condition("user.roles", "contains", rnd.choice(ROLES))
    if roll < 0.7:
        values = tuple(rnd.choice(VALUES) for _ in range(rnd.randint(1, 3)))
        return Condition(rnd.choice(["tool.args.a", "user.id"]), "in", values)
    return Condition(
        rnd.choice(["tool.args.a", "user.claims.level", "user.id"]),
        rnd.choice(["equals", "not_equals", "gt", "lt", "contains"]),
        rnd.choice(VALUES),
    )


def rule(rnd: Random, index: int) -> RuleSpec:
    return RuleSpec(
        name=f"r{index}",
        effect=rnd.choice(["allow", "deny"]),
        priority=rnd.choice([50, 100, 100, 200]),
        agents=maybe(rnd, lambda: agents(rnd)),
        tools=maybe(rnd, lambda: tools(rnd)),
        resources=maybe(rnd, lambda: resources(rnd), 0.25),
        resource_templates=maybe(rnd, lambda: templates(rnd), 0.2),
        prompts=maybe(rnd, lambda: prompts(rnd), 0.25),
        actions=rnd.choice([("*",), ("*",), ("call",), ("read", "get"), ("c*",)]),
        conditions=tuple(condition(rnd) for _ in range(rnd.choice([0, 0, 1, 2]))),
    )


def policy_set(rnd: Random) -> list[PolicySpec]:
    combining = rnd.choice([None, "first_match", "deny_overrides"])
    return [
        PolicySpec(
            name=f"p{p}",
            rules=tuple(rule(rnd, i) for i in range(rnd.randint(0, 8))),
            default_effect=rnd.choice(["allow", "deny"]),
            combining=combining if rnd.random() < 0.5 else None,
        )
        for p in range(rnd.randint(0, 3))
    ]


def request(rnd: Random) -> AccessRequest:
    kind = rnd.choice(["tool", "resource", "resource_template", "prompt"])
    principal = Principal(
        user_id=rnd.choice([*USERS, None]),
        roles=tuple(rnd.sample(ROLES, rnd.randint(0, 2))),
        agent_id=rnd.choice([None, None, "bot", "bx", "svc-9"]),
        claims=rnd.choice([{}, {"level": 5}, {"level": "7"}]),
        authenticated=rnd.random() < 0.9,
    )
    resource = Resource(
        kind=kind,  # type: ignore[arg-type]
        name=rnd.choice(NAMES),
        tags=frozenset(rnd.sample(TAGS, rnd.randint(0, 2))),
        namespace=rnd.choice([None, "files", "net"]),
        uri=rnd.choice([None, *URIS]),
        template=rnd.choice([None, *TEMPLATES]),
    )
    args = rnd.choice([{}, {"a": 1}, {"a": 7}, {"a": "7"}, {"a": "x"}, {"a": None}])
    return AccessRequest(principal, resource, rnd.choice(ACTIONS), args)


def ours(ps: PolicySet, request: AccessRequest) -> dict[str, Any]:
    d = ps.decide(request)
    return {"allowed": d.allowed, "reason": d.reason, "policy": d.policy if d.rule else None,
            "rule": d.rule}  # fmt: skip


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(rnd=st.randoms(use_true_random=True))
def test_decide_agrees_with_reference(rnd: Random) -> None:
    # Hypothesis seeds the generator: one draw per example instead of hundreds keeps 10,000
    # examples fast; a failure prints the policies and the request instead of shrinking.
    specs = policy_set(rnd)
    ps = PolicySet.from_specs(specs)
    for _ in range(rnd.randint(1, 6)):
        req = request(rnd)
        expected = reference.as_mapping(reference.decide(specs, req))
        assert ours(ps, req) == expected, (specs, req)
        check_explanation(ps, req)


def check_explanation(ps: PolicySet, req: AccessRequest) -> None:
    """`explain` traces with the same rules: its matches are the decision's."""
    ex = ps.explain(req)
    d, again = ex.decision, ps.decide(req)
    assert (d.allowed, d.reason, d.rule, d.policy) == (
        again.allowed, again.reason, again.rule, again.policy,
    )  # fmt: skip
    matched = [f"{s.policy}/{s.rule}" for s in ex.steps if s.outcome == "matched"]
    deciding = [f"{s.policy}/{s.rule}" for s in ex.steps if s.deciding]
    if d.reason != "rule":  # no rule matched (or none was asked)
        assert deciding == [] and matched == []
    elif ps.combining == "first_match":
        assert deciding == [f"{d.policy}/{d.rule}"] == matched[:1]
    else:
        assert deciding == [f"{d.policy}/{d.rule}"] and tuple(matched) == d.matched_rules


@settings(
    max_examples=max(EXAMPLES // 10, 100),
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(rnd=st.randoms(use_true_random=True))
def test_memo_agrees_with_reference(rnd: Random) -> None:
    # Requests that come back to the same component objects, from principals equal in ids
    # and roles but not in claims or authentication, with other arguments and actions:
    # what the memo of condition-free decisions keys on, and what it must not ignore.
    specs = policy_set(rnd)
    ps = PolicySet.from_specs(specs)
    pool = [request(rnd) for _ in range(3)]
    for _ in range(12):
        base, other = rnd.choice(pool), request(rnd)
        principal = replace(
            base.principal,
            claims=other.principal.claims,
            authenticated=rnd.choice([base, other]).principal.authenticated,
        )
        action = rnd.choice([base.action, other.action])
        req = AccessRequest(principal, base.resource, action, other.args)
        expected = reference.as_mapping(reference.decide(specs, req))
        assert ours(ps, req) == expected, (specs, req)


def test_reference_can_disagree() -> None:
    """The comparison is not vacuous: a wrong priority order is caught."""
    specs = [
        PolicySpec("p0", (RuleSpec("low", "allow"),)),
        PolicySpec("p1", (RuleSpec("high", "deny", priority=200),)),
    ]
    request = AccessRequest(Principal("a"), Resource("tool", "x"), "call")
    expected = reference.as_mapping(reference.decide(specs, request))
    assert ours(PolicySet.from_specs(specs), request) == expected
    assert ours(PolicySet.from_specs(specs[:1]), request) != expected
