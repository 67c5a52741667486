"""The fluent policy builder: policies written in Python, as on mcp-auth-guard's page.

```python
from guard.policy import policy, rule

my_policy = (
    policy("secure_service")
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
```

`build()` returns a `PolicyConfig`, accepted wherever policies are (`load_policies`,
`PolicyEngine`, `GuardMiddleware`, `middleware.add_policy`); its canonical YAML is
`dump_spec(my_policy.to_spec())`. Every method of mcp-auth-guard's `PolicyBuilder` and
`RuleBuilder` is here, plus the guard's additions: resources, prompts and resource templates,
every condition operator, `all` / `any` / `not` groups, named custom conditions, priority and
combining. `add_rule` takes a `RuleBuilder` as well as a built rule (mcp-auth-guard's page
passed builders, which its own `build()` rejected).
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping
from typing import Any, Literal

from guard.policy.spec import Condition, ConditionGroup, CustomCondition, RuleSpec
from guard.schemas.policy import (
    AgentMatcher,
    ConditionItem,
    ConditionOperator,
    Effect,
    PolicyCondition,
    PolicyConfig,
    PolicyRule,
    PromptMatcher,
    ResourceMatcher,
    TemplateMatcher,
    ToolMatcher,
)

__all__ = [
    "PolicyBuilder",
    "RuleBuilder",
    "all_of",
    "allow_all_for_admins",
    "any_of",
    "condition",
    "custom",
    "deny_sensitive_tools",
    "not_",
    "policy",
    "rule",
]


def condition(
    field: str, operator: ConditionOperator | str, value: Any, *, timezone: str | None = None
) -> PolicyCondition:
    """One condition, for use inside `all_of` / `any_of` / `not_` or `RuleBuilder.when`."""
    return PolicyCondition(field=field, operator=operator, value=value, timezone=timezone)


def _node(item: ConditionItem | Any) -> Condition | ConditionGroup | CustomCondition:
    if isinstance(item, PolicyCondition):
        return item.to_spec()
    if isinstance(item, Condition | ConditionGroup | CustomCondition):
        return item
    if hasattr(item, "evaluate"):
        return custom(item)
    raise TypeError(f"not a condition: {item!r}")


def all_of(*items: ConditionItem) -> ConditionGroup:
    """A group that holds when every item holds (YAML `all:`)."""
    return ConditionGroup("all", tuple(_node(i) for i in items))


def any_of(*items: ConditionItem) -> ConditionGroup:
    """A group that holds when at least one item holds (YAML `any:`)."""
    return ConditionGroup("any", tuple(_node(i) for i in items))


def not_(item: ConditionItem) -> ConditionGroup:
    """A group that holds when its one item does not (YAML `not:`)."""
    return ConditionGroup("not", (_node(item),))


def custom(name_or_condition: Any, params: Any = None) -> CustomCondition:
    """A named custom condition (YAML `{custom: NAME}`).

    Given a condition object (a `PolicyCondition` subclass instance, or anything with
    `evaluate(context)`), it is registered first, under its `name` attribute or its class
    name in snake_case.
    """
    if isinstance(name_or_condition, str):
        return CustomCondition(name_or_condition, params)
    from guard.policy.compat import register_custom

    return CustomCondition(register_custom(name_or_condition), params)


def _values(method: str, values: Any) -> list[Any]:
    # list("prod") is its letters: a deny rule `when_in(field, "prod")` would never fire
    if isinstance(values, str | bytes | Mapping):
        raise TypeError(f"{method}(field, values) takes a list of values, not {values!r}")
    return list(values)


def snake_case(name: str) -> str:
    """`TimeBasedCondition` -> `time_based_condition`."""
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", name).lower()


class RuleBuilder:
    """Fluent builder of one `PolicyRule` (effect `allow` unless told otherwise).

    Example:
        ```python
        no_tmp_escape = (
            rule("files_in_tmp")
            .for_roles("user")
            .for_tools("read_file")
            .when("tool.args.path", "path_within", "/tmp")
            .allow()
        )
        ```
    """

    def __init__(self, name: str) -> None:
        self._rule = PolicyRule(name=name, effect=Effect.ALLOW)

    @property
    def name(self) -> str:
        return self._rule.name

    # effect, description, priority
    def allow(self) -> RuleBuilder:
        self._rule.effect = Effect.ALLOW
        return self

    def deny(self) -> RuleBuilder:
        self._rule.effect = Effect.DENY
        return self

    def with_effect(self, effect: Effect | str) -> RuleBuilder:
        self._rule.effect = Effect(str(effect).lower() if isinstance(effect, str) else effect)
        return self

    def with_description(self, description: str) -> RuleBuilder:
        self._rule.description = description
        return self

    def with_priority(self, priority: int) -> RuleBuilder:
        """Higher priority is evaluated first (default 100)."""
        if isinstance(priority, bool) or not isinstance(priority, int):
            raise TypeError(f"priority must be an int, not {priority!r}")
        self._rule.priority = priority
        return self

    priority = with_priority

    # who
    def _agents(self) -> AgentMatcher:
        if self._rule.agents is None:
            self._rule.agents = AgentMatcher()
        return self._rule.agents

    def for_users(self, *user_ids: str) -> RuleBuilder:
        self._agents().user_id = list(user_ids)
        return self

    def for_roles(self, *roles: str) -> RuleBuilder:
        self._agents().roles = list(roles)
        return self

    def for_agents(self, *agent_ids: str) -> RuleBuilder:
        self._agents().agent_id = list(agent_ids)
        return self

    def for_patterns(self, *patterns: str) -> RuleBuilder:
        """Wildcard patterns matched against the user id or the agent id."""
        self._agents().patterns = list(patterns)
        return self

    for_agent_patterns = for_patterns

    # tools
    def _tools(self) -> ToolMatcher:
        if self._rule.tools is None:
            self._rule.tools = ToolMatcher()
        return self._rule.tools

    def for_tools(self, *names: str) -> RuleBuilder:
        self._tools().names = list(names)
        return self

    def for_tool_patterns(self, *patterns: str) -> RuleBuilder:
        self._tools().patterns = list(patterns)
        return self

    def for_namespaces(self, *namespaces: str) -> RuleBuilder:
        self._tools().namespaces = list(namespaces)
        return self

    def for_tool_tags(self, *tags: str) -> RuleBuilder:
        self._tools().tags = list(tags)
        return self

    # resources (matched on URI)
    def _resources(self) -> ResourceMatcher:
        if self._rule.resources is None:
            self._rule.resources = ResourceMatcher()
        return self._rule.resources

    def for_resources(self, *uris: str) -> RuleBuilder:
        self._resources().uris = list(uris)
        return self

    def for_resource_patterns(self, *patterns: str) -> RuleBuilder:
        self._resources().patterns = list(patterns)
        return self

    def for_resource_schemes(self, *schemes: str) -> RuleBuilder:
        self._resources().schemes = list(schemes)
        return self

    def for_resource_tags(self, *tags: str) -> RuleBuilder:
        self._resources().tags = list(tags)
        return self

    # resource templates
    def _templates(self) -> TemplateMatcher:
        if self._rule.resource_templates is None:
            self._rule.resource_templates = TemplateMatcher()
        return self._rule.resource_templates

    def for_templates(self, *uri_templates: str) -> RuleBuilder:
        self._templates().uri_templates = list(uri_templates)
        return self

    def for_template_names(self, *names: str) -> RuleBuilder:
        self._templates().names = list(names)
        return self

    def for_template_patterns(self, *patterns: str) -> RuleBuilder:
        self._templates().patterns = list(patterns)
        return self

    def for_template_tags(self, *tags: str) -> RuleBuilder:
        self._templates().tags = list(tags)
        return self

    # prompts
    def _prompts(self) -> PromptMatcher:
        if self._rule.prompts is None:
            self._rule.prompts = PromptMatcher()
        return self._rule.prompts

    def for_prompts(self, *names: str) -> RuleBuilder:
        self._prompts().names = list(names)
        return self

    def for_prompt_patterns(self, *patterns: str) -> RuleBuilder:
        self._prompts().patterns = list(patterns)
        return self

    def for_prompt_tags(self, *tags: str) -> RuleBuilder:
        self._prompts().tags = list(tags)
        return self

    # actions
    def for_actions(self, *actions: str) -> RuleBuilder:
        """`call`, `read`, `get`, `list`, or `*` (the default)."""
        self._rule.actions = list(actions)
        return self

    # conditions
    def when(
        self,
        field: str | ConditionItem,
        operator: ConditionOperator | str | None = None,
        value: Any = None,
        *,
        timezone: str | None = None,
    ) -> RuleBuilder:
        """Add a condition: `when("tool.args.city", "in", ["Paris"])`, or a built one
        (`all_of(...)`, `any_of(...)`, `not_(...)`, `custom(...)`, `condition(...)`)."""
        if isinstance(field, str):
            if operator is None:
                raise TypeError("when(field, operator, value): operator is missing")
            self._rule.conditions.append(condition(field, operator, value, timezone=timezone))
        else:
            self._rule.conditions.append(_node(field))
        return self

    with_condition = when

    def when_equals(self, field: str, value: Any) -> RuleBuilder:
        return self.when(field, ConditionOperator.EQUALS, value)

    def when_not_equals(self, field: str, value: Any) -> RuleBuilder:
        return self.when(field, ConditionOperator.NOT_EQUALS, value)

    def when_in(self, field: str, values: list[Any]) -> RuleBuilder:
        return self.when(field, ConditionOperator.IN, _values("when_in", values))

    def when_not_in(self, field: str, values: list[Any]) -> RuleBuilder:
        return self.when(field, ConditionOperator.NOT_IN, _values("when_not_in", values))

    def when_contains(self, field: str, value: Any) -> RuleBuilder:
        return self.when(field, ConditionOperator.CONTAINS, value)

    def when_not_contains(self, field: str, value: Any) -> RuleBuilder:
        return self.when(field, ConditionOperator.NOT_CONTAINS, value)

    def when_starts_with(self, field: str, value: str) -> RuleBuilder:
        return self.when(field, ConditionOperator.STARTS_WITH, value)

    def when_ends_with(self, field: str, value: str) -> RuleBuilder:
        return self.when(field, ConditionOperator.ENDS_WITH, value)

    def when_regex(self, field: str, pattern: str) -> RuleBuilder:
        """The whole value must match `pattern` (anchored at both ends)."""
        return self.when(field, ConditionOperator.REGEX, pattern)

    def when_gt(self, field: str, value: Any) -> RuleBuilder:
        return self.when(field, ConditionOperator.GT, value)

    def when_gte(self, field: str, value: Any) -> RuleBuilder:
        return self.when(field, ConditionOperator.GTE, value)

    def when_lt(self, field: str, value: Any) -> RuleBuilder:
        return self.when(field, ConditionOperator.LT, value)

    def when_lte(self, field: str, value: Any) -> RuleBuilder:
        return self.when(field, ConditionOperator.LTE, value)

    def when_all(self, *items: ConditionItem) -> RuleBuilder:
        return self.when(all_of(*items))

    def when_any(self, *items: ConditionItem) -> RuleBuilder:
        return self.when(any_of(*items))

    def when_not(self, item: ConditionItem) -> RuleBuilder:
        return self.when(not_(item))

    def when_custom(self, name_or_condition: Any, params: Any = None) -> RuleBuilder:
        """A named custom condition (see `custom`)."""
        return self.when(custom(name_or_condition, params))

    def build(self) -> PolicyRule:
        """The rule built so far (a copy: the builder can go on)."""
        return copy.deepcopy(self._rule)

    def to_spec(self) -> RuleSpec:
        return self._rule.to_spec()


class PolicyBuilder:
    """Fluent builder of one `PolicyConfig` (default effect `deny`).

    Example:
        ```python
        from guard import load_policies
        from guard.policy import policy, rule

        no_tmp_escape = (
            rule("no_tmp_escape").for_tool_patterns("write_*")
            .when_equals("tool.args.dir", "/tmp").deny()
        )
        files = policy("files").deny_overrides().add_rule(no_tmp_escape).build()
        load_policies(files)  # or PolicyEngine([files]), GuardMiddleware(files)
        ```
    """

    def __init__(self, name: str) -> None:
        self._policy = PolicyConfig(name=name, rules=[])

    @property
    def name(self) -> str:
        return self._policy.name

    def with_description(self, description: str) -> PolicyBuilder:
        self._policy.description = description
        return self

    def with_version(self, version: str) -> PolicyBuilder:
        self._policy.version = str(version)
        return self

    def with_default_effect(self, effect: Effect | str) -> PolicyBuilder:
        self._policy.default_effect = Effect(effect.lower() if isinstance(effect, str) else effect)
        return self

    def allow_by_default(self) -> PolicyBuilder:
        return self.with_default_effect(Effect.ALLOW)

    def deny_by_default(self) -> PolicyBuilder:
        return self.with_default_effect(Effect.DENY)

    def with_combining(self, combining: Literal["first_match", "deny_overrides"]) -> PolicyBuilder:
        """`first_match` (by priority, then order; the default) or `deny_overrides`."""
        if combining not in ("first_match", "deny_overrides"):
            raise ValueError(f"combining must be first_match or deny_overrides: {combining!r}")
        self._policy.combining = combining
        return self

    def first_match(self) -> PolicyBuilder:
        return self.with_combining("first_match")

    def deny_overrides(self) -> PolicyBuilder:
        return self.with_combining("deny_overrides")

    def with_tags(self, *tags: str) -> PolicyBuilder:
        self._policy.tags.extend(tags)
        return self

    def created_by(self, creator: str) -> PolicyBuilder:
        self._policy.created_by = creator
        return self

    def add_rule(self, rule: RuleBuilder | PolicyRule | RuleSpec) -> PolicyBuilder:
        """Add a rule: a `RuleBuilder` (built now), a `PolicyRule` or a `RuleSpec`."""
        if isinstance(rule, RuleBuilder):
            built = rule.build()
        elif isinstance(rule, PolicyRule):
            built = copy.deepcopy(rule)
        elif isinstance(rule, RuleSpec):
            built = PolicyRule.from_spec(rule)
        else:
            raise TypeError(f"add_rule expects a rule or a rule builder, not {rule!r}")
        self._policy.rules.append(built)
        return self

    def add_rules(self, *rules: RuleBuilder | PolicyRule | RuleSpec) -> PolicyBuilder:
        for r in rules:
            self.add_rule(r)
        return self

    def build(self) -> PolicyConfig:
        """The policy built so far (a copy); it is validated when compiled or `to_spec()`-ed."""
        return copy.deepcopy(self._policy)


def policy(name: str) -> PolicyBuilder:
    """Start building a policy."""
    return PolicyBuilder(name)


def rule(name: str) -> RuleBuilder:
    """Start building a rule."""
    return RuleBuilder(name)


def allow_all_for_admins() -> PolicyRule:
    """mcp-auth-guard's ready-made rule: role `admin` may do anything (priority 1000)."""
    return (
        rule("admin_access").for_roles("admin").for_actions("*").allow().with_priority(1000).build()
    )


def deny_sensitive_tools() -> PolicyRule:
    """mcp-auth-guard's ready-made rule: deny `*admin*`, `*delete*`, `*destroy*` tools (900)."""
    return (
        rule("deny_sensitive")
        .for_tool_patterns("*admin*", "*delete*", "*destroy*")
        .deny()
        .with_priority(900)
        .build()
    )
