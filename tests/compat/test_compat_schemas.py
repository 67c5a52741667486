"""guard.schemas mirrors mcp-auth-guard's schemas and converts to the guard's model."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from datetime import UTC, datetime

import mcp_auth_guard.schemas as seed_schemas
import pytest

import guard.schemas as ours
from guard.policy.model import Decision, Reason
from guard.policy.spec import Condition, ConditionGroup, CustomCondition, PolicySpec, RuleSpec
from guard.schemas import (
    AuthContext,
    AuthDecision,
    DecisionReason,
    PolicyConfig,
    ResourceContext,
    ToolResource,
)

MIRRORED = [
    "AuthConfig",
    "AuthContext",
    "ToolResource",
    "ResourceContext",
    "AuthDecision",
    "PolicyConfig",
    "PolicyRule",
]


def _default(f: dataclasses.Field[object]) -> object:
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return "<required>"


@pytest.mark.parametrize("name", MIRRORED)
def test_same_fields_and_defaults_as_mcp_auth_guard(name: str) -> None:
    theirs = getattr(seed_schemas, name).model_fields
    mine = {f.name: f for f in dataclasses.fields(getattr(ours, name)) if f.init}
    assert set(theirs) <= set(mine), set(theirs) - set(mine)
    for field_name, info in theirs.items():
        expected = (
            "<required>" if info.is_required() else info.get_default(call_default_factory=True)
        )
        assert _default(mine[field_name]) == expected, (name, field_name)


@pytest.mark.parametrize("name", ["AuthMethod", "Effect", "ConditionOperator", "DecisionReason"])
def test_same_enum_values_as_mcp_auth_guard(name: str) -> None:
    theirs = {m.name: m.value for m in getattr(seed_schemas, name)}
    mine = {m.name: m.value for m in getattr(ours, name)}
    assert mine == theirs


def test_import_is_light() -> None:
    code = (
        "import sys, guard.schemas; "
        "print(sorted(m for m in ('fastmcp','duckdb','pydantic','yaml','opentelemetry.sdk') "
        "if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize(
    "spelling,kind",
    [
        ("tool", "tool"),
        ("tools", "tool"),
        ("resource", "resource"),
        ("resources", "resource"),
        ("prompt", "prompt"),
        ("prompts", "prompt"),
        ("resource_template", "resource_template"),
    ],
)
def test_resource_type_accepts_singular_and_plural(spelling: str, kind: str) -> None:
    ctx = ResourceContext(
        resource_type=spelling,
        resource=ToolResource(name="x://y"),
        action="call",
        method="tools/call",
    )
    assert ctx.kind == kind
    assert ctx.to_resource().kind == kind


def test_unknown_resource_type_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match=r"unknown resource_type 'tool_call'.*tools"):
        ResourceContext(
            resource_type="tool_call",
            resource=ToolResource(name="x"),
            action="call",
            method="tools/call",
        )


def test_contexts_convert_to_an_access_request() -> None:
    auth = AuthContext(
        user_id="alice",
        roles=["user"],
        claims={"team": "a"},
        agent_id="bot",
        session_id="s1",
        authenticated=True,
        auth_method=ours.AuthMethod.JWT,
    )
    res = ResourceContext(
        resource_type="tools",
        resource=ToolResource(
            name="get_weather",
            namespace="wx",
            version="2",
            tags=["safe"],
            arguments={"city": "Paris"},
            metadata={"owner": "ops"},
        ),
        action="call",
        method="tools/call",
        request_id="r1",
        timestamp=1_700_000_000.5,
    )
    req = res.to_access_request(auth.to_principal(), session_id=auth.session_id)
    p = req.principal
    assert (p.user_id, p.roles, p.agent_id, p.authenticated, p.auth_method) == (
        "alice",
        ("user",),
        "bot",
        True,
        "jwt",
    )
    assert dict(p.claims) == {"team": "a"}
    r = req.resource
    assert (r.kind, r.name, r.namespace, r.version, r.tags, r.uri) == (
        "tool",
        "get_weather",
        "wx",
        "2",
        frozenset({"safe"}),
        None,
    )
    assert dict(r.meta) == {"owner": "ops"}
    assert (req.action, req.method, dict(req.args)) == ("call", "tools/call", {"city": "Paris"})
    assert req.time == datetime.fromtimestamp(1_700_000_000.5, UTC)
    assert req.context["request_id"] == "r1" and req.context["session_id"] == "s1"


def test_resource_uri_comes_from_name_or_metadata() -> None:
    def uri(**kw: object) -> str | None:
        ctx = ResourceContext(
            resource_type="resources",
            resource=ToolResource(**kw),  # type: ignore[arg-type]
            action="read",
            method="resources/read",
        )
        return ctx.to_resource().uri

    assert uri(name="data://a") == "data://a"
    assert uri(name="a", metadata={"uri": "data://b"}) == "data://b"


def test_principal_round_trip() -> None:
    auth = AuthContext(user_id="u", roles=["a", "b"], authenticated=True, auth_method="api_key")
    back = AuthContext.from_principal(auth.to_principal())
    assert back == auth


def test_auth_context_is_unauthenticated_by_default() -> None:
    assert AuthContext(user_id="x").to_principal().authenticated is False


@pytest.mark.parametrize(
    "reason,expected",
    [
        (Reason.RULE, DecisionReason.RULE_MATCHED),
        (Reason.DEFAULT, DecisionReason.DEFAULT_EFFECT),
        (Reason.UNAUTHENTICATED, DecisionReason.AUTHENTICATION_FAILED),
        (Reason.ERROR, DecisionReason.CONDITION_FAILED),
        (Reason.CANCELLED, DecisionReason.CONDITION_FAILED),
    ],
)
def test_auth_decision_from_decision(reason: str, expected: DecisionReason) -> None:
    rule = "r" if reason == Reason.RULE else None
    d = Decision(
        allowed=reason == Reason.RULE, reason=reason, rule=rule, rules_evaluated=3, eval_us=1500.0
    )
    a = AuthDecision.from_decision(d)
    assert (a.allowed, a.reason, a.evaluated_rules, a.evaluation_time_ms) == (
        d.allowed,
        expected,
        3,
        1.5,
    )
    assert a.matched_rule == d.rule and a.decision is d and a.message


def _loaded_spec() -> PolicySpec:
    rule = RuleSpec(
        name="r",
        effect="allow",
        line=4,
        conditions=(
            Condition("tool.args.x", "in", ("a", "b"), line=7),
            ConditionGroup(
                "any",
                (
                    Condition("user.id", "equals", "u", line=9),
                    CustomCondition("business_hours", line=10),
                ),
                line=8,
            ),
        ),
    )
    return PolicySpec(name="p", rules=(rule,), source="p.yaml", text="name: p\n...")


def test_unedited_config_gives_back_its_origin_spec() -> None:
    spec = _loaded_spec()
    cfg = PolicyConfig.from_spec(spec)
    assert cfg.to_spec() is spec
    assert cfg.rules[0].conditions[0] == ours.PolicyCondition(
        field="tool.args.x", operator="in", value=["a", "b"]
    )


def test_edited_config_gives_a_new_spec_with_canonical_text() -> None:
    spec = _loaded_spec()
    cfg = PolicyConfig.from_spec(spec)
    cfg.rules[0].priority = 5
    fresh = cfg.to_spec()
    assert fresh is not spec
    assert fresh.rules[0].priority == 5 and fresh.source == "p.yaml"
    assert fresh.text and fresh.text != spec.text
    assert fresh.rules[0].conditions[1].items[1] == CustomCondition("business_hours", line=10)


def test_effects_are_validated() -> None:
    cfg = PolicyConfig(name="p", rules=[ours.PolicyRule(name="r", effect="maybe")])
    with pytest.raises(ValueError, match="effect must be 'allow' or 'deny'"):
        cfg.to_spec()
    cfg2 = PolicyConfig(name="p", rules=[], default_effect="ALLOW")
    assert cfg2.to_spec().default_effect == "allow"


def test_one_string_for_actions_or_tags_is_one_item_not_its_letters() -> None:
    # tuple("call") was ("c", "a", "l", "l"): a deny rule written `actions="call"` matched no
    # action at all, so it never denied
    from guard import AccessRequest, Principal, Resource, load_policies

    deny = ours.PolicyRule(name="no_calls", effect="deny", actions="call")  # type: ignore[arg-type]
    cfg = PolicyConfig(name="p", rules=[deny], default_effect="allow", tags="prod")  # type: ignore[arg-type]
    spec = cfg.to_spec()
    assert (spec.rules[0].actions, spec.tags) == (("call",), ("prod",))
    request = AccessRequest(Principal("u", ["user"]), Resource("tool", "t"), "call")
    decision = load_policies(cfg).decide(request)
    assert (decision.allowed, decision.rule) == (False, "no_calls")


def test_one_string_for_roles_or_tags_is_refused_not_split_into_letters() -> None:
    # tuple("admin") and frozenset("safe") were handed to Principal and Resource already
    # split, past their own refusal of one string: the caller had roles a, d, m, i, n
    with pytest.raises(TypeError, match="roles"):
        AuthContext(user_id="u", roles="admin", authenticated=True).to_principal()  # type: ignore[arg-type]
    ctx = ResourceContext(
        resource_type="tool",
        resource=ToolResource(name="t", tags="safe"),  # type: ignore[arg-type]
        action="call",
        method="tools/call",
    )
    with pytest.raises(TypeError, match="tags"):
        ctx.to_resource()
    assert AuthContext(roles=["admin"]).to_principal().roles == ("admin",)
