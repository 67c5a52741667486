"""PolicyEngine and PolicyEvaluator: sources they accept, what they report, failing closed."""

from __future__ import annotations

from pathlib import Path

import pytest

from guard import load_policies
from guard.policy import PolicyEngine, PolicyEvaluator, PolicyLoader, policy, rule
from guard.schemas import (
    AuthContext,
    DecisionReason,
    PolicyRule,
    ResourceContext,
    ToolResource,
)

POLICY = """\
name: p
rules:
  - name: users_get
    effect: allow
    agents: {roles: [user]}
    tools: {patterns: ["get_*"]}
  - name: no_delete
    effect: deny
    priority: 200
    tools: {patterns: ["*delete*"]}
"""

ALICE = AuthContext(user_id="alice", roles=["user"], authenticated=True)


def _tool(name: str, **kw: object) -> ResourceContext:
    return ResourceContext(
        resource_type="tool",
        resource=ToolResource(name=name, **kw),  # type: ignore[arg-type]
        action="call",
        method="tools/call",
    )


@pytest.mark.parametrize(
    "source",
    [
        pytest.param(lambda p: [PolicyLoader.load_from_file(p)], id="PolicyConfig"),
        pytest.param(lambda p: [PolicyLoader.load_from_file(p).to_spec()], id="PolicySpec"),
        pytest.param(lambda p: [str(p)], id="path"),
        pytest.param(lambda p: [POLICY], id="yaml-text"),
        pytest.param(lambda p: PolicyLoader.load_from_directory(p.parent), id="directory"),
    ],
)
def test_engine_accepts_every_policy_form(tmp_path: Path, source: object) -> None:
    path = tmp_path / "p.yaml"
    path.write_text(POLICY)
    engine = PolicyEngine(source(path))  # type: ignore[operator]
    assert engine.list_policies() == ["p"]
    assert engine.evaluate_sync(ALICE, _tool("get_x")).matched_rule == "users_get"
    assert engine.evaluate_sync(ALICE, _tool("get_delete")).matched_rule == "no_delete"
    # the compat engine decides with exactly the set load_policies builds
    assert engine.policy_set.hash == load_policies(path).hash


def test_engine_decision_carries_the_full_guard_decision() -> None:
    engine = PolicyEngine([PolicyLoader.load_from_string(POLICY)])
    d = engine.evaluate_sync(ALICE, _tool("get_delete"))
    assert (d.allowed, d.reason) == (False, DecisionReason.RULE_MATCHED)
    assert d.matched_rule == "no_delete"
    assert d.decision is not None
    assert d.decision.policy == "p" and d.decision.policy_hash == engine.policy_set.hash
    assert d.message


def test_bad_request_input_fails_closed() -> None:
    engine = PolicyEngine([policy("open").allow_by_default().build()])
    assert engine.evaluate_sync(ALICE, _tool("x")).allowed is True
    unhashable_tags = _tool("x", tags=[["nested"]])  # cannot become a Resource
    d = engine.evaluate_sync(ALICE, unhashable_tags)
    assert (d.allowed, d.reason) == (False, DecisionReason.CONDITION_FAILED)
    assert d.message == "Error while deciding: TypeError"


def test_engine_rejects_what_is_not_a_policy() -> None:
    with pytest.raises(TypeError, match="not a policy"):
        PolicyEngine([42])  # type: ignore[list-item]


def test_no_policies_denies() -> None:
    d = PolicyEngine([]).evaluate_sync(ALICE, _tool("x"))
    assert (d.allowed, d.reason, d.matched_rule) == (False, DecisionReason.DEFAULT_EFFECT, None)


async def test_policy_evaluator_tells_whether_one_rule_applies() -> None:
    evaluator = PolicyEvaluator()
    users_get = rule("users_get").for_roles("user").for_tool_patterns("get_*").build()
    assert await evaluator.evaluate_rule(users_get, ALICE, _tool("get_x")) is True
    assert await evaluator.evaluate_rule(users_get, ALICE, _tool("put_x")) is False
    intern = AuthContext(user_id="i", roles=["intern"], authenticated=True)
    assert await evaluator.evaluate_rule(users_get, intern, _tool("get_x")) is False
    deny = PolicyRule(name="d", effect="deny")
    assert await evaluator.evaluate_rule(deny.to_spec(), ALICE, _tool("x")) is True


def test_loader_rejects_files_with_several_policies(tmp_path: Path) -> None:
    path = tmp_path / "two.yaml"
    path.write_text(POLICY + "---\n" + POLICY.replace("name: p", "name: q"))
    with pytest.raises(ValueError, match="holds 2 policies"):
        PolicyLoader.load_from_file(path)
    assert [p.name for p in PolicyLoader.load_all(path)] == ["p", "q"]


def test_model_validate_and_dump_round_trip() -> None:
    from guard.schemas import PolicyConfig

    cfg = PolicyConfig.model_validate(
        {"name": "p", "rules": [{"name": "r", "effect": "allow", "tools": {"names": ["t"]}}]}
    )
    data = cfg.model_dump()
    assert data["rules"][0]["tools"] == {"names": ["t"]}
    assert PolicyConfig.model_validate(data).to_spec().rules == cfg.to_spec().rules


@pytest.mark.parametrize(
    "bad",
    [
        # an empty `any` holds for nothing: this deny rule never denied
        pytest.param(
            policy("p").allow_by_default().add_rule(rule("d").when_any().deny()), id="empty-any"
        ),
        pytest.param(policy("p").add_rule(rule("a").deny()).add_rule(rule("a")), id="dup-rule"),
        pytest.param(policy("p").add_rule(rule("")), id="empty-rule-name"),
        pytest.param(policy("p").add_rule(rule("r").for_roles(None)), id="null-role"),  # type: ignore[arg-type]
    ],
)
def test_engine_refuses_a_built_policy_load_policies_refuses(bad: object) -> None:
    # the engine compiled built policies itself, skipping the checks every other entry
    # point makes: what `load_policies` refuses was decided here
    from guard import PolicyError

    config = bad.build()  # type: ignore[attr-defined]
    with pytest.raises(PolicyError):
        load_policies(config)
    with pytest.raises(PolicyError):
        PolicyEngine([config])
    engine = PolicyEngine([])
    with pytest.raises(PolicyError):
        engine.add_policy(config)
    assert engine.list_policies() == []


@pytest.mark.parametrize("spelling", ["tool", "tools"])
def test_request_resource_type_is_the_method_prefix_whatever_the_spelling(spelling: str) -> None:
    """The README: `request.resource_type` is the method's prefix, as both middlewares set
    it live; mcp-auth-guard's engine read the `resource_type` given (`tool` on the page)."""
    engine = PolicyEngine(
        [
            {"name": "p", "rules": [{
                "name": "by_type", "effect": "allow", "conditions": [
                    {"field": "request.resource_type", "operator": "equals", "value": "tools"}
                ],
            }]},
        ]
    )  # fmt: skip
    context = ResourceContext(
        resource_type=spelling, resource=ToolResource(name="t"), action="call",
        method="tools/call",
    )  # fmt: skip
    assert engine.evaluate_sync(ALICE, context).matched_rule == "by_type"
