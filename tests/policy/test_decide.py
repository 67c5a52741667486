"""`PolicySet`: ordering, combining, defaults, matchers, indexing, fail-closed paths,
hash, explanations."""

from __future__ import annotations

import gc
import tracemalloc
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

import pytest

from guard.errors import PolicyError
from guard.policy import load_policies
from guard.policy.conditions import register_condition, unregister_condition
from guard.policy.model import AccessRequest, Principal, Reason, Resource
from guard.policy.policyset import MEMO_SIZE, PolicySet
from guard.policy.spec import AgentMatch, Condition, PolicySpec, RuleSpec, ToolMatch

ALICE = Principal("alice", ("user",))


def ask(
    ps: PolicySet,
    name: str = "get_weather",
    *,
    kind: str = "tool",
    principal: Principal = ALICE,
    action: str | None = None,
    args: Mapping[str, Any] | None = None,
    **res: Any,
) -> Any:
    default_action = {"tool": "call", "prompt": "get"}.get(kind, "read")
    resource = Resource(kind, name, **res)  # type: ignore[arg-type]
    return ps.decide(AccessRequest(principal, resource, action or default_action, args or {}))


def policy(name: str, *rules: dict[str, Any], **top: Any) -> dict[str, Any]:
    return {"name": name, "rules": list(rules), **top}


def test_first_match_uses_priority_across_policies() -> None:
    ps = load_policies(
        [
            policy("a", {"name": "allow_all", "effect": "allow", "priority": 100}),
            policy("b", {"name": "deny_weather", "effect": "deny", "priority": 200,
                         "tools": {"names": ["get_weather"]}}),
        ]
    )  # fmt: skip
    d = ask(ps)
    assert (d.allowed, d.rule, d.policy, d.reason) == (False, "deny_weather", "b", Reason.RULE)
    assert d.matched_rules == ("b/deny_weather",)
    assert ask(ps, "other").rule == "allow_all"


def test_equal_priority_keeps_policy_then_rule_order() -> None:
    ps = load_policies(
        [
            policy("a", {"name": "a1", "effect": "deny", "tools": {"patterns": ["get_*"]}},
                   {"name": "a2", "effect": "allow"}),
            policy("b", {"name": "b1", "effect": "allow", "tools": {"names": ["get_weather"]}}),
        ]
    )  # fmt: skip
    assert ask(ps).rule == "a1"  # a pattern rule in an earlier policy beats a later exact name
    assert ask(ps, "put").rule == "a2"


def test_deny_overrides_collects_every_match() -> None:
    ps = load_policies(
        policy("svc", {"name": "users", "effect": "allow", "priority": 300},
               {"name": "no_weather", "effect": "deny", "tools": {"names": ["get_weather"]}},
               {"name": "tools", "effect": "allow", "tools": {"patterns": ["*"]}},
               combining="deny_overrides")
    )  # fmt: skip
    d = ask(ps)
    assert (d.allowed, d.rule, d.reason) == (False, "no_weather", Reason.RULE)
    assert d.matched_rules == ("svc/users", "svc/no_weather", "svc/tools")
    d = ask(ps, "other")
    assert (d.allowed, d.rule) == (True, "users")
    assert ps.combining == "deny_overrides"


def test_policies_that_disagree_on_combining_do_not_compile() -> None:
    with pytest.raises(PolicyError, match="combining"):
        load_policies(
            [policy("a", combining="first_match"), policy("b", combining="deny_overrides")]
        )
    ps = load_policies([policy("a", combining="deny_overrides"), policy("b")])
    assert ps.combining == "deny_overrides"


def test_default_allows_only_if_every_policy_allows() -> None:
    both = load_policies([policy("a", default_effect="allow"), policy("b", default_effect="allow")])
    d = ask(both)
    assert (d.allowed, d.reason, d.rule) == (True, Reason.DEFAULT, None)
    one = load_policies([policy("a", default_effect="allow"), policy("b", default_effect="deny")])
    d = ask(one)
    assert (d.allowed, d.reason, d.policy) == (False, Reason.DEFAULT, "b")
    assert "default" in d.message
    assert one.default_allowed is False and both.default_allowed is True


def test_empty_set_and_unauthenticated_are_denied() -> None:
    empty = PolicySet.empty()
    assert (ask(empty).allowed, ask(empty).reason) == (False, Reason.NO_POLICY)
    ps = load_policies(policy("open", {"name": "all", "effect": "allow"}))
    d = ask(ps, principal=Principal.anonymous())
    assert (d.allowed, d.reason, d.rules_evaluated) == (False, Reason.UNAUTHENTICATED, 0)


def test_decision_fields() -> None:
    ps = load_policies(
        policy("svc", {"name": "users", "effect": "allow", "agents": {"roles": ["user"]}})
    )
    d = ask(ps)
    assert d.policy_hash == ps.hash and len(ps.hash) == 64
    assert d.rules_evaluated == 1 and d.eval_us > 0
    assert d.message == "allowed by rule 'users' of policy 'svc'"
    assert (ps.names, ps.rule_count, len(ps.policies)) == (("svc",), 1, 1)


def test_hash_is_stable_and_content_sensitive() -> None:
    text = "name: svc\nrules:\n  - {name: r, effect: allow}\n"
    assert load_policies(text).hash == load_policies(text).hash
    assert load_policies(text).hash != load_policies(text.replace("allow", "deny")).hash
    a = PolicySpec("a", (RuleSpec("r", "allow"),))
    b = PolicySpec("b", (RuleSpec("r", "allow"),))
    assert PolicySet.from_specs([a, b]).hash != PolicySet.from_specs([b, a]).hash
    assert PolicySet.from_specs([a]).hash != PolicySet.from_specs([replace(a, rules=())]).hash


def test_policy_set_is_immutable() -> None:
    ps = PolicySet.empty()
    with pytest.raises(AttributeError):
        ps.hash = "x"  # type: ignore[misc]


def test_agent_matchers() -> None:
    ps = load_policies(
        policy("svc",
               {"name": "by_user", "effect": "allow", "agents": {"user_id": ["adm*"]}},
               {"name": "any_role", "effect": "allow", "agents": {"roles": ["*"]},
                "tools": {"names": ["t_any"]}},
               {"name": "by_agent", "effect": "allow", "agents": {"agent_id": "claude"}},
               {"name": "by_pattern", "effect": "allow", "agents": {"patterns": ["svc-*"]}},
               {"name": "both", "effect": "allow",
                "agents": {"user_id": ["bob"], "roles": ["ops"]}})
    )  # fmt: skip
    assert ask(ps, principal=Principal("admin1")).rule == "by_user"
    assert ask(ps, "t_any").rule == "any_role"
    assert ask(ps, "t_any", principal=Principal("x", ())).allowed is False
    assert ask(ps, principal=Principal("x", agent_id="claude")).rule == "by_agent"
    assert ask(ps, principal=Principal("x", agent_id="svc-1")).rule == "by_pattern"
    assert ask(ps, principal=Principal("svc-2")).rule == "by_pattern"
    assert ask(ps, principal=Principal("bob", ("ops",))).rule == "both"
    assert ask(ps, principal=Principal("bob", ("dev",))).allowed is False


def test_component_matchers_by_kind() -> None:
    ps = load_policies(
        policy("svc",
               {"name": "tool_ns", "effect": "allow", "tools": {"namespaces": ["files"]}},
               {"name": "tool_tag", "effect": "allow", "tools": {"tags": ["safe", "ro"]}},
               {"name": "res_uri", "effect": "allow", "resources": {"uris": ["data://a"]}},
               {"name": "res_scheme", "effect": "allow", "resources": {"schemes": ["pub"]}},
               {"name": "res_pattern", "effect": "allow", "resources": {"patterns": ["db://*/ro"]}},
               {"name": "tpl", "effect": "allow",
                "resource_templates": {"uri_templates": ["users://{id}/profile"]}},
               {"name": "prompt", "effect": "allow", "prompts": {"patterns": ["summ*"]}},
               {"name": "legacy", "effect": "allow", "tools": {"names": ["shared"]}})
    )  # fmt: skip
    assert ask(ps, "ls", namespace="files").rule == "tool_ns"
    assert ask(ps, "ls", tags={"ro"}).rule == "tool_tag"
    # resources match on the URI, not on the name (mcp-auth-guard's bug)
    assert ask(ps, "data://a", kind="resource", uri="data://b").allowed is False
    assert ask(ps, "A", kind="resource", uri="data://a").rule == "res_uri"
    assert ask(ps, "x", kind="resource", uri="pub://x").rule == "res_scheme"
    assert ask(ps, "x", kind="resource", uri="db://main/ro").rule == "res_pattern"
    assert ask(ps, "x", kind="resource", uri="other://x").allowed is False
    assert ask(ps, "t", kind="resource_template", uri="users://{id}/profile").rule == "tpl"
    via = ask(ps, "p", kind="resource", uri="users://7/profile", template="users://{id}/profile")
    assert via.rule == "tpl"
    assert ask(ps, "summarize", kind="prompt").rule == "prompt"
    assert ask(ps, "summarize").allowed is False  # a prompts-only rule never applies to tools
    assert ask(ps, "shared", kind="prompt").rule == "legacy"  # tools matcher by name
    assert ask(ps, "shared", kind="resource", uri="x://shared").rule == "legacy"


def test_rule_without_component_matcher_applies_to_every_kind() -> None:
    ps = load_policies(
        policy("svc", {"name": "ops", "effect": "allow", "agents": {"roles": ["ops"]}})
    )
    ops = Principal("o", ("ops",))
    for kind in ("tool", "resource", "resource_template", "prompt"):
        assert ask(ps, "x", kind=kind, principal=ops).rule == "ops"


def test_actions_are_patterns_and_unusual_actions_work() -> None:
    ps = load_policies(
        policy("svc", {"name": "lister", "effect": "allow", "actions": ["list"]},
               {"name": "custom", "effect": "allow", "actions": ["ex*"]})
    )  # fmt: skip
    assert ask(ps, action="list").rule == "lister"
    assert ask(ps, action="call").allowed is False
    assert ask(ps, action="execute").rule == "custom"
    for i in range(100):  # more unusual actions than the memo holds: still correct
        assert ask(ps, action=f"ex{i}").rule == "custom"
        assert ask(ps, action=f"zz{i}").allowed is False


def test_unknown_conditions_fail_closed() -> None:
    ps = load_policies(
        policy("svc",
               {"name": "deny_big", "effect": "deny", "priority": 200, "tools": {"names": ["pay"]},
                "conditions": [{"field": "tool.args.amount", "operator": "gt", "value": 100}]},
               {"name": "allow_eng", "effect": "allow", "priority": 150,
                "conditions": [{"field": "user.claims.dept", "operator": "equals",
                                "value": "eng"}]},
               {"name": "allow_pay", "effect": "allow", "tools": {"names": ["pay"]}})
    )  # fmt: skip
    assert ask(ps, "pay", args={"amount": "150"}).rule == "deny_big"  # '150' > 100
    assert ask(ps, "pay", args={"amount": 5}).rule == "allow_pay"
    d = ask(ps, "pay", args={"amount": "lots"})  # cannot compare: the deny rule applies
    assert (d.allowed, d.rule, d.reason) == (False, "deny_big", Reason.RULE)
    assert len(d.errors) == 1 and "deny_big" in d.errors[0] and "lots" not in d.errors[0]
    d = ask(ps, "pay", args={})  # missing field: same
    assert d.rule == "deny_big" and "missing" in d.errors[0]
    d = ask(ps, "other")  # claims.dept missing: the allow rule is skipped, default denies
    assert (d.allowed, d.reason) == (False, Reason.DEFAULT)
    assert "allow_eng" in d.errors[0]


def test_any_exception_denies_with_reason_error() -> None:
    ps = load_policies(policy("svc", {"name": "all", "effect": "allow"}))
    bogus = AccessRequest(ALICE, Resource("gadget", "x"), "call")  # type: ignore[arg-type]
    d = ps.decide(bogus)
    assert (d.allowed, d.reason) == (False, Reason.ERROR) and d.errors
    assert d.policy_hash == ps.hash
    explained = ps.explain(bogus)
    assert explained.decision.reason == Reason.ERROR
    assert [s.outcome for s in explained.steps] == ["error"]


def test_custom_conditions_are_captured_at_compile_time() -> None:
    register_condition("test_is_even", lambda ctx: ctx["tool"]["args"]["n"] % 2 == 0)
    try:
        spec = PolicySpec("svc", (RuleSpec("even", "allow", conditions=(
            __import__("guard.policy.spec", fromlist=["CustomCondition"]).CustomCondition(
                "test_is_even"),)),))  # fmt: skip
        ps = PolicySet.from_specs([spec])
        assert ask(ps, args={"n": 2}).allowed is True
        unregister_condition("test_is_even")
        assert ask(ps, args={"n": 3}).allowed is False
        with pytest.raises(PolicyError, match="test_is_even"):
            PolicySet.from_specs([spec])
        explicit = PolicySet.from_specs([spec], conditions={"test_is_even": lambda ctx: True})
        assert ask(explicit, args={"n": 3}).allowed is True
    finally:
        unregister_condition("test_is_even")


def test_seed_policy_condition_subclass_works() -> None:
    from guard.policy import PolicyCondition

    class WeatherOnly(PolicyCondition):
        def evaluate(self, context: Mapping[str, Any]) -> bool:
            return bool(context["tool"]["name"] == "get_weather")

    register_condition("test_weather_only", WeatherOnly())
    try:
        ps = load_policies(
            policy("svc", {"name": "w", "effect": "allow",
                           "conditions": [{"custom": "test_weather_only"}]})
        )  # fmt: skip
        assert ask(ps).allowed is True
        assert ask(ps, "other").allowed is False
    finally:
        unregister_condition("test_weather_only")


def test_bad_conditions_are_reported_together_with_their_rule() -> None:
    specs = [PolicySpec("svc", (
        RuleSpec("r1", "allow", conditions=(Condition("tool.args.ip", "cidr", "nope"),)),
        RuleSpec("r2", "allow", conditions=(Condition("tool.args.x", "regex", "(a+)+$"),)),
    ), source="svc.yaml")]  # fmt: skip
    with pytest.raises(PolicyError) as info:
        PolicySet.from_specs(specs)
    problems = info.value.problems
    assert len(problems) == 2 and {p.source for p in problems} == {"svc.yaml"}
    assert "r1" in (problems[0].field or "") and "r2" in (problems[1].field or "")


def test_index_keeps_global_order_across_index_kinds() -> None:
    # Every rule below matches `svc_read` for alice/ops; the highest priority must win no
    # matter which index (exact, prefix, suffix, tag, role, user, scan) holds it.
    kinds: list[dict[str, Any]] = [
        {"tools": {"names": ["svc_read"]}},
        {"tools": {"patterns": ["svc_*"]}},
        {"tools": {"patterns": ["*_read"]}},
        {"tools": {"tags": ["t"]}},
        {"agents": {"roles": ["ops"]}},
        {"agents": {"user_id": "alice"}},
        {"agents": {"roles": ["*"]}},
        {"tools": {"patterns": ["*"]}},
        {},
    ]
    for top in range(len(kinds)):
        rules = [
            {"name": f"k{i}", "effect": "allow", "priority": 500 if i == top else 100 + i, **k}
            for i, k in enumerate(kinds)
        ]
        ps = load_policies(policy("svc", *rules))
        d = ask(ps, "svc_read", principal=Principal("alice", ("ops",)), tags={"t"})
        assert d.rule == f"k{top}", (top, d)
        lowest = ask(ps, "svc_read", principal=Principal("alice", ("ops",)), tags={"t"})
        assert lowest.rules_evaluated == 1


def test_index_does_not_grow_work_with_unrelated_rules() -> None:
    rules = [
        {"name": f"r{i}", "effect": "allow", "tools": {"names": [f"tool_{i}"]},
         "agents": {"roles": [f"role_{i % 10}"]}}
        for i in range(5000)
    ] + [{"name": "fam", "effect": "deny", "tools": {"patterns": ["svc3_*"]}}]  # fmt: skip
    ps = load_policies(policy("big", *rules))
    d = ask(ps, "tool_4321", principal=Principal("u", ("role_1",)))
    assert (d.allowed, d.rule, d.rules_evaluated) == (True, "r4321", 1)
    d = ask(ps, "svc3_x", principal=Principal("u", ("role_1",)))
    assert (d.rule, d.rules_evaluated) == ("fam", 1)


def test_condition_free_decisions_are_served_again_with_their_own_time() -> None:
    users = {"name": "users", "effect": "allow", "agents": {"roles": ["user"]},
             "tools": {"tags": ["safe"]}}  # fmt: skip
    ps = load_policies(policy("svc", users))
    tool = Resource("tool", "get_weather", tags={"safe"})

    def decide(principal: Principal, resource: Resource = tool, **kw: Any) -> Any:
        return ps.decide(AccessRequest(principal, resource, "call", **kw))

    first = decide(Principal("alice", ("user",), key_id="k1"))
    # an authenticator makes a new principal per request: the same ids and roles hit
    again = decide(Principal("alice", ("user",), key_id="k2", claims={"x": 1}), args={"a": 1})
    assert len(ps._memo) == 1
    assert replace(again, eval_us=first.eval_us) == first and again is not first
    assert again.eval_us < 1_000_000
    # what the memo keys on is not ignored: roles, user id, the component itself
    assert not decide(Principal("alice", ("ops",))).allowed
    assert decide(Principal("bob", ("user",))).allowed
    untagged = Resource("tool", "get_weather")
    assert not decide(Principal("alice", ("user",)), untagged).allowed
    assert not decide(Principal("alice", ("user",), authenticated=False)).allowed
    assert len(ps._memo) == 4  # the unauthenticated caller is refused before the memo
    del untagged  # an entry goes with its component
    assert len(ps._memo) == 3


def test_decisions_that_evaluated_a_condition_are_never_memoized() -> None:
    small = {"name": "small", "effect": "allow", "tools": {"names": ["t"]},
             "conditions": [{"field": "tool.args.n", "operator": "lte", "value": 5}]}  # fmt: skip
    ps = load_policies(policy("svc", small, {"name": "rest", "effect": "allow"}))
    t, other = Resource("tool", "t"), Resource("tool", "other")
    for n, rule in ((1, "small"), (9, "rest"), (2, "small")):
        assert ps.decide(AccessRequest(ALICE, t, "call", {"n": n})).rule == rule
    # a component whose candidate rules have no condition, in the same policy, is kept
    assert ps.decide(AccessRequest(ALICE, other, "call", {"n": 9})).rule == "rest"
    assert [entry[1] is None for entry in ps._memo.values()] == [True, False]


def test_memo_is_bounded_and_survives_unhashable_roles() -> None:
    ps = load_policies(policy("svc", {"name": "all", "effect": "allow"}))
    tools = [Resource("tool", f"tool_{i}") for i in range(MEMO_SIZE + 10)]
    for tool in tools:
        assert ps.decide(AccessRequest(ALICE, tool, "call")).allowed
    assert 0 < len(ps._memo) <= MEMO_SIZE
    odd = Principal("alice", (["not", "hashable"],))  # type: ignore[arg-type]
    assert ask(ps, principal=odd).reason == Reason.RULE


def test_memo_keeps_nothing_of_a_request_once_it_is_over() -> None:
    # A caller names what does not exist (or reads URIs through a template): each request
    # makes its own Resource, holding the caller's text. None of it may outlive the request.
    ps = load_policies(policy("svc", {"name": "w", "effect": "allow", "tools": {"names": ["w"]}}))
    gc.collect()
    # what this test and the policy code allocated: not other threads' (tracemalloc counts
    # every thread of the process, and the suite's holds threads of earlier tests)
    mine = [tracemalloc.Filter(True, __file__), tracemalloc.Filter(True, "*/guard/*")]
    tracemalloc.start()
    try:
        for i in range(32):
            unknown = Resource("tool", f"{i}:" + "x" * 1_000_000, found=False)
            assert not ps.decide(AccessRequest(ALICE, unknown, "call")).allowed
            del unknown
        gc.collect()
        kept = tracemalloc.take_snapshot().filter_traces(mine)
    finally:
        tracemalloc.stop()
    retained = sum(stat.size for stat in kept.statistics("filename"))
    assert retained < 2_000_000, f"{retained / 1e6:.1f} MB retained after 32 decisions"
    assert ps._memo == {}


def test_explain_traces_every_rule_with_the_same_decision() -> None:
    ps = load_policies(
        policy("svc",
               {"name": "admins", "effect": "allow", "priority": 300,
                "agents": {"roles": ["admin"]}},
               {"name": "no_delete", "effect": "deny", "priority": 200,
                "tools": {"patterns": ["delete_*"]}},
               {"name": "lister", "effect": "allow", "actions": ["list"]},
               {"name": "small", "effect": "allow", "conditions": [
                   {"field": "user.id", "operator": "equals", "value": "alice"},
                   {"field": "tool.args.n", "operator": "lte", "value": 3}]})
    )  # fmt: skip
    request = AccessRequest(ALICE, Resource("tool", "t"), "call", {"n": 5})
    ex = ps.explain(request)
    assert ex.decision.allowed is False and ex.decision.reason == Reason.DEFAULT
    steps = {s.rule: s for s in ex.steps}
    assert [s.rule for s in ex.steps] == ["admins", "no_delete", "lister", "small"]
    assert (steps["admins"].outcome, steps["admins"].failed) == ("not_matched", "agent")
    assert steps["no_delete"].failed == "component"
    assert steps["lister"].failed == "action"
    assert steps["small"].failed == "condition 2" and "is false" in steps["small"].detail
    ex = ps.explain(replace(request, resource=Resource("tool", "delete_x")))
    assert [s.rule for s in ex.steps if s.deciding] == ["no_delete"]
    assert "DENY (rule)" in str(ex) and "=> svc/no_delete" in str(ex)
    unknown = ps.explain(replace(request, args={}))
    assert unknown.steps[3].outcome == "unknown_skipped"


def test_tool_matcher_spec_objects_compile_directly() -> None:
    spec = PolicySpec("svc", (RuleSpec("r", "allow", agents=AgentMatch(roles=("user",)),
                                       tools=ToolMatch(names=("get_weather",))),))  # fmt: skip
    ps = PolicySet.from_specs([spec])
    assert ask(ps).rule == "r" and ask(ps, "x").allowed is False


def test_requests_and_decisions_stay_frozen_values_with_their_signatures() -> None:
    """Their `__init__` is written by hand (for speed): it must keep the dataclass's."""
    import dataclasses
    import inspect

    from guard.policy.model import Decision

    for cls in (AccessRequest, Decision):
        params = list(inspect.signature(cls).parameters.values())
        fields = dataclasses.fields(cls)
        assert [p.name for p in params] == [f.name for f in fields]
        for p, f in zip(params, fields, strict=True):
            default = f.default_factory() if callable(f.default_factory) else f.default
            assert p.default == default or (p.default is inspect.Parameter.empty
                                            and default is dataclasses.MISSING)  # fmt: skip
    resource = Resource("tool", "t")
    by_position = AccessRequest(ALICE, resource, "call", {"a": 1}, None, "tools/call", {"x": 1})
    by_name = AccessRequest(
        principal=ALICE, resource=resource, action="call", args={"a": 1}, method="tools/call",
        context={"x": 1},
    )  # fmt: skip
    assert by_position == by_name
    assert AccessRequest(ALICE, resource, "list").args == {}
    decision = Decision(True, "rule", "r", "p", ("p/r",), (), "h", 2, 1.5, "ok")
    assert decision == Decision(
        allowed=True, reason="rule", rule="r", policy="p", matched_rules=("p/r",),
        policy_hash="h", rules_evaluated=2, eval_us=1.5, message="ok",
    )  # fmt: skip
    assert hash(decision) == hash(replace(decision))
    assert replace(decision, allowed=False).allowed is False and decision.allowed is True
    with pytest.raises(dataclasses.FrozenInstanceError):
        decision.allowed = False  # type: ignore[misc]
    with pytest.raises(TypeError):
        AccessRequest(ALICE, resource)  # type: ignore[call-arg]


@pytest.mark.parametrize("one", ["admin", b"admin"])
def test_one_string_for_roles_or_tags_is_refused_not_split_into_letters(one: Any) -> None:
    """`Principal("alice", "admin")` type-checks nowhere but runs: a string is a sequence
    of characters, so the caller had the roles a, d, m, i, n (and a tool the tags)."""
    with pytest.raises(TypeError, match="roles"):
        Principal("alice", one)
    with pytest.raises(TypeError, match="tags"):
        Resource("tool", "t", tags=one)
    assert Principal("alice", ["admin"]).roles == ("admin",)
    assert Resource("tool", "t", tags=["a"]).tags == frozenset({"a"})


@pytest.mark.parametrize(
    "match",
    [
        {"agents": {"agent_id": ["bot", "bot"]}},
        {"agents": {"user_id": ["alice", "alice"]}},
        {"agents": {"roles": ["user", "user"]}},
        {"tools": {"names": ["get_weather", "get_weather"]}},
        {"tools": {"patterns": ["get_*", "get_*"]}},
        {"tools": {"tags": ["read", "read"]}},
        {"tools": {"namespaces": ["wx", "wx"]}},
    ],
)
@pytest.mark.parametrize("combining", ["first_match", "deny_overrides"])
def test_a_value_listed_twice_matches_its_rule_once(match: dict[str, Any], combining: str) -> None:
    """Found by the README-semantics property test: a rule indexed under the same key
    twice (`agent_id: [bot, bot]`) was a hit twice, and listed twice in `matched_rules`
    where every matching rule is looked at."""
    rule = {"name": "r", "effect": "allow", **match}
    ps = load_policies([policy("p", rule, combining=combining)])
    principal = Principal("alice", ("user",), agent_id="bot")
    decision = ask(ps, principal=principal, tags=frozenset({"read"}), namespace="wx")
    assert decision.matched_rules == ("p/r",)
