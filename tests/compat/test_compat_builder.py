"""The fluent builder: the seed page's snippet, every seed method, and the guard's additions."""

from __future__ import annotations

import dataclasses
import inspect

import mcp_auth_guard.policy.builder as seed_builder
import pytest

from guard.policy.builder import (
    PolicyBuilder,
    RuleBuilder,
    all_of,
    allow_all_for_admins,
    any_of,
    condition,
    custom,
    deny_sensitive_tools,
    not_,
    policy,
    rule,
)
from guard.policy.spec import (
    AgentMatch,
    Condition,
    ConditionGroup,
    CustomCondition,
    PromptMatch,
    ResourceMatch,
    TemplateMatch,
    ToolMatch,
)
from guard.schemas import ConditionOperator, PolicyConfig, PolicyRule


def _page_policy() -> PolicyConfig:
    # verbatim from mcp-auth-guard's page (its own build() rejects the RuleBuilders)
    return (
        policy("secure_service")
        .with_description("Security policy for my service")
        .deny_by_default()
        .add_rule(rule("admin_access").for_roles("admin").for_tool_patterns("*").allow())
        .add_rule(
            rule("user_read_only")
            .for_roles("user")
            .for_tool_patterns("get_*", "list_*")
            .when_equals("tool.args.readonly", True)
            .allow()
        )
        .build()
    )


def test_page_snippet_builds_the_policy_it_describes() -> None:
    spec = _page_policy().to_spec()
    assert (spec.name, spec.description, spec.default_effect) == (
        "secure_service",
        "Security policy for my service",
        "deny",
    )
    admin, user = spec.rules
    assert (admin.name, admin.effect, admin.agents, admin.tools) == (
        "admin_access",
        "allow",
        AgentMatch(roles=("admin",)),
        ToolMatch(patterns=("*",)),
    )
    assert user.tools == ToolMatch(patterns=("get_*", "list_*"))
    assert user.conditions == (Condition("tool.args.readonly", "equals", True),)
    assert spec.text  # canonical text to hash


@pytest.mark.parametrize("cls_name", ["PolicyBuilder", "RuleBuilder"])
def test_every_seed_builder_method_exists(cls_name: str) -> None:
    seed_cls = getattr(seed_builder, cls_name)
    mine = {"PolicyBuilder": PolicyBuilder, "RuleBuilder": RuleBuilder}[cls_name]
    seed_methods = {
        n for n, _ in inspect.getmembers(seed_cls, inspect.isfunction) if not n.startswith("_")
    }
    assert seed_methods, "the seed's builder has methods"
    missing = {n for n in seed_methods if not callable(getattr(mine, n, None))}
    assert not missing


def test_seed_module_helpers() -> None:
    admin = allow_all_for_admins().to_spec()
    assert (admin.name, admin.priority, admin.agents, admin.actions) == (
        "admin_access",
        1000,
        AgentMatch(roles=("admin",)),
        ("*",),
    )
    sensitive = deny_sensitive_tools().to_spec()
    assert (sensitive.effect, sensitive.priority) == ("deny", 900)
    assert sensitive.tools == ToolMatch(patterns=("*admin*", "*delete*", "*destroy*"))


def test_same_result_as_seed_builder_for_seed_methods() -> None:
    def build(mod: object) -> dict[str, object]:
        r = (
            mod.rule("r")
            .with_description("d")
            .for_users("u1", "u2")  # type: ignore[attr-defined]
            .for_roles("a")
            .for_agents("bot")
            .for_patterns("svc_*")
            .for_tools("t")
            .for_tool_patterns("t*")
            .for_namespaces("ns")
            .for_tool_tags("safe")
            .for_actions("call")
            .when("tool.args.n", ConditionOperator.GT.value, 3)
            .when_in("user.id", ["u1"])
            .when_contains("tool.name", "t")
            .with_priority(7)
            .deny()
            .build()
        )
        p = (
            mod.policy("p")
            .with_description("pd")
            .with_version("2.0")  # type: ignore[attr-defined]
            .allow_by_default()
            .with_tags("x", "y")
            .add_rule(r)
            .build()
        )
        if isinstance(p, PolicyConfig):
            return _config_as_seed_dict(p)
        return p.model_dump(exclude_none=True)  # type: ignore[no-any-return]

    import guard.policy.builder as mine

    assert build(mine) == build(seed_builder)


def _config_as_seed_dict(cfg: PolicyConfig) -> dict[str, object]:
    # the seed's own pydantic model, validated from our object's fields, is the judge
    from mcp_auth_guard.schemas.policy import PolicyConfig as SeedConfig

    data = {
        "name": cfg.name,
        "description": cfg.description,
        "version": cfg.version,
        "default_effect": str(cfg.default_effect),
        "tags": cfg.tags,
        "created_by": cfg.created_by,
        "rules": [
            {
                "name": r.name,
                "description": r.description,
                "effect": str(r.effect),
                "agents": dataclasses.asdict(r.agents) if r.agents else None,
                "tools": dataclasses.asdict(r.tools) if r.tools else None,
                "actions": r.actions,
                "priority": r.priority,
                "conditions": [
                    {"field": c.field, "operator": str(c.operator), "value": c.value}  # type: ignore[union-attr]
                    for c in r.conditions
                ],
            }
            for r in cfg.rules
        ],
    }
    return SeedConfig.model_validate(data).model_dump(exclude_none=True)


def test_additions_resources_prompts_templates() -> None:
    r = (
        rule("r")
        .for_resources("data://a")
        .for_resource_patterns("data://*")
        .for_resource_schemes("data")
        .for_resource_tags("pub")
        .for_prompts("greet")
        .for_prompt_patterns("g*")
        .for_prompt_tags("p")
        .for_templates("users://{id}")
        .for_template_names("user")
        .for_template_patterns("u*")
        .for_template_tags("t")
        .to_spec()
    )
    assert r.resources == ResourceMatch(("data://a",), ("data://*",), ("data",), ("pub",))
    assert r.prompts == PromptMatch(("greet",), ("g*",), ("p",))
    assert r.resource_templates == TemplateMatch(("users://{id}",), ("user",), ("u*",), ("t",))


def test_additions_conditions_of_every_kind() -> None:
    r = (
        rule("r")
        .when_not_equals("a", 1)
        .when_not_in("b", ["x"])
        .when_not_contains("c", "y")
        .when_starts_with("d", "/tmp")
        .when_ends_with("e", ".txt")
        .when_regex("f", "^a+$")
        .when_gt("g", 1)
        .when_gte("h", 2)
        .when_lt("i", 3)
        .when_lte("j", 4)
        .when("tool.args.path", "path_within", "/srv")
        .when("request.time.hour", "gte", 9, timezone="Europe/Paris")
        .when_any(condition("user.id", "equals", "a"), condition("user.id", "equals", "b"))
        .when_all(condition("k", "equals", 1), not_(condition("l", "equals", 2)))
        .when_not(condition("m", "in", [1, 2]))
        .when_custom("business_hours", {"start": 9})
        .to_spec()
    )
    ops = [c.operator for c in r.conditions if isinstance(c, Condition)]
    assert ops == [
        "not_equals",
        "not_in",
        "not_contains",
        "starts_with",
        "ends_with",
        "regex",
        "gt",
        "gte",
        "lt",
        "lte",
        "path_within",
        "gte",
    ]
    assert r.conditions[11] == Condition("request.time.hour", "gte", 9, timezone="Europe/Paris")
    assert r.conditions[12] == any_of(
        condition("user.id", "equals", "a"), condition("user.id", "equals", "b")
    )
    assert r.conditions[13] == ConditionGroup(
        "all", (Condition("k", "equals", 1), ConditionGroup("not", (Condition("l", "equals", 2),)))
    )
    assert r.conditions[14] == ConditionGroup("not", (Condition("m", "in", (1, 2)),))
    assert r.conditions[15] == CustomCondition("business_hours", {"start": 9})
    assert all_of() == ConditionGroup("all", ())


def test_priority_combining_and_metadata() -> None:
    spec = (
        policy("p")
        .with_combining("deny_overrides")
        .created_by("me")
        .with_version("3")
        .add_rule(rule("r").priority(5).deny())
        .build()
        .to_spec()
    )
    assert (spec.combining, spec.created_by, spec.version) == ("deny_overrides", "me", "3")
    assert (spec.rules[0].priority, spec.rules[0].effect) == (5, "deny")
    assert policy("p").first_match().build().combining == "first_match"
    assert policy("p").deny_overrides().build().combining == "deny_overrides"


def test_build_returns_independent_copies() -> None:
    b = rule("r").for_roles("a")
    first = b.build()
    b.for_roles("b").deny()
    assert first.agents is not None and first.agents.roles == ["a"] and first.effect == "allow"
    pb = policy("p").add_rule(first)
    built = pb.build()
    pb.add_rule(rule("r2"))
    assert [r.name for r in built.rules] == ["r"]


def test_add_rule_accepts_built_rules_and_specs() -> None:
    spec_rule = rule("s").deny().to_spec()
    cfg = policy("p").add_rules(rule("a"), PolicyRule(name="b", effect="allow"), spec_rule).build()
    assert [(r.name, str(r.effect)) for r in cfg.rules] == [
        ("a", "allow"),
        ("b", "allow"),
        ("s", "deny"),
    ]


@pytest.mark.parametrize(
    "call,error",
    [
        (lambda: policy("p").add_rule("r"), TypeError),  # type: ignore[arg-type]
        (lambda: rule("r").with_priority("high"), TypeError),  # type: ignore[arg-type]
        (lambda: rule("r").when("x", None, 1), TypeError),
        (lambda: rule("r").when(42), TypeError),  # type: ignore[arg-type]
        (lambda: policy("p").with_combining("whatever"), ValueError),  # type: ignore[arg-type]
        (lambda: policy("p").with_default_effect("maybe"), ValueError),
        (lambda: custom(object()), TypeError),
    ],
)
def test_bad_input_is_a_clear_error(call: object, error: type[Exception]) -> None:
    with pytest.raises(error):
        call()  # type: ignore[operator]


@pytest.mark.parametrize("method", ["when_in", "when_not_in"])
@pytest.mark.parametrize("values", ["prod", b"prod", {"prod": 1}])
def test_in_with_one_string_is_refused_not_split_into_letters(method: str, values: object) -> None:
    # list("prod") was ['p', 'r', 'o', 'd']: a deny rule `when_in("tool.args.env", "prod")`
    # never fired (mcp-auth-guard's builder denied: "prod" in "prod"); YAML refuses it at load
    with pytest.raises(TypeError, match="a list of values"):
        getattr(rule("r"), method)("tool.args.env", values)
