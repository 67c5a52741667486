"""Policies in mcp-auth-guard's object form: `PolicyConfig`, `PolicyRule` and their matchers.

mcp-auth-guard users build and inspect policies through these mutable objects (its builder
returns them, its loader returns them). Here they are a thin, editable view over the guard's
validated `PolicySpec`: `to_spec()` turns one into the form every loader and the one
evaluator accept, and `PolicyConfig.from_spec()` goes the other way. A `PolicyConfig` made
from a loaded file and left unchanged gives back that file's own spec (same source, lines and
content hash); once edited, its canonical text comes from `dump_spec`.

The guard's additions are here too: `combining` on the policy, `resource_templates` and
`tags` on resource matchers, and conditions that are groups (`ConditionGroup`) or named
custom conditions (`CustomCondition`) next to plain `PolicyCondition`s.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from enum import Enum, StrEnum
from typing import Any, Literal

from guard.policy.spec import (
    AgentMatch,
    Condition,
    ConditionGroup,
    ConditionNode,
    CustomCondition,
    PolicySpec,
    PromptMatch,
    ResourceMatch,
    RuleSpec,
    TemplateMatch,
    ToolMatch,
    content_of,
)

__all__ = [
    "AgentMatcher",
    "ConditionOperator",
    "Effect",
    "PolicyCondition",
    "PolicyConfig",
    "PolicyRule",
    "PromptMatcher",
    "ResourceMatcher",
    "TemplateMatcher",
    "ToolMatcher",
]


class Effect(StrEnum):
    """What a rule (or a policy's default) does."""

    ALLOW = "allow"
    DENY = "deny"


class ConditionOperator(StrEnum):
    """mcp-auth-guard's condition operators (the guard accepts more, given as strings)."""

    EQUALS = "equals"
    NOT_EQUALS = "not_equals"
    IN = "in"
    NOT_IN = "not_in"
    CONTAINS = "contains"
    NOT_CONTAINS = "not_contains"
    STARTS_WITH = "starts_with"
    ENDS_WITH = "ends_with"
    REGEX = "regex"
    GT = "gt"
    LT = "lt"
    GTE = "gte"
    LTE = "lte"


def _effect(value: Effect | str) -> Literal["allow", "deny"]:
    text = value.value if isinstance(value, Effect) else str(value).lower()
    if text == "allow":
        return "allow"
    if text == "deny":
        return "deny"
    raise ValueError(f"effect must be 'allow' or 'deny', not {value!r}")


def _strings(value: str | list[str] | tuple[str, ...] | None) -> tuple[str, ...] | None:
    if value is None:
        return None
    return (value,) if isinstance(value, str) else tuple(value)


def _items(value: str | list[str] | tuple[str, ...]) -> tuple[str, ...]:
    # one string is one item: tuple("call") is its letters, and a deny rule given
    # `actions="call"` matched no action at all
    return (value,) if isinstance(value, str) else tuple(value)


def _listed(value: tuple[str, ...] | None) -> list[str] | None:
    return None if value is None else list(value)


def _frozen(value: Any) -> Any:
    # specs are immutable, so list values become tuples, as the loader makes them
    if isinstance(value, list | tuple):
        return tuple(_frozen(v) for v in value)
    if isinstance(value, Enum):
        return value.value
    return value


def _thawed(value: Any) -> Any:
    return [_thawed(v) for v in value] if isinstance(value, tuple) else value


@dataclass(kw_only=True, slots=True)
class PolicyCondition:
    """`field operator value`, e.g. `tool.args.readonly equals true`.

    `operator` is a `ConditionOperator` or any operator name the guard knows
    (`path_within`, `cidr`, ...); `timezone` applies to `request.time*` fields.
    """

    field: str
    operator: ConditionOperator | str
    value: Any
    timezone: str | None = None

    def to_spec(self) -> Condition:
        op = self.operator.value if isinstance(self.operator, Enum) else str(self.operator)
        return Condition(self.field, op, _frozen(self.value), timezone=self.timezone)


ConditionItem = PolicyCondition | ConditionGroup | CustomCondition | Condition


def _condition_spec(item: ConditionItem) -> ConditionNode:
    if isinstance(item, PolicyCondition):
        return item.to_spec()
    if isinstance(item, Condition | ConditionGroup | CustomCondition):
        return item
    raise TypeError(f"not a condition: {item!r}")


def _condition_item(node: ConditionNode) -> ConditionItem:
    if isinstance(node, Condition):
        return PolicyCondition(
            field=node.field,
            operator=node.operator,
            value=_thawed(node.value),
            timezone=node.timezone,
        )
    return node  # groups and custom conditions have no mcp-auth-guard form: kept as they are


@dataclass(kw_only=True, slots=True)
class AgentMatcher:
    """Who a rule applies to; every given criterion must hold."""

    user_id: str | list[str] | None = None
    roles: list[str] | None = None
    agent_id: str | list[str] | None = None
    patterns: list[str] | None = None

    def to_spec(self) -> AgentMatch:
        return AgentMatch(
            _strings(self.user_id),
            _strings(self.roles),
            _strings(self.agent_id),
            _strings(self.patterns),
        )


@dataclass(kw_only=True, slots=True)
class ToolMatcher:
    """Which tools a rule applies to."""

    names: list[str] | None = None
    patterns: list[str] | None = None
    namespaces: list[str] | None = None
    tags: list[str] | None = None

    def to_spec(self) -> ToolMatch:
        return ToolMatch(
            _strings(self.names),
            _strings(self.patterns),
            _strings(self.namespaces),
            _strings(self.tags),
        )


@dataclass(kw_only=True, slots=True)
class ResourceMatcher:
    """Which resources a rule applies to (matched on the resource's URI)."""

    uris: list[str] | None = None
    patterns: list[str] | None = None
    schemes: list[str] | None = None
    tags: list[str] | None = None

    def to_spec(self) -> ResourceMatch:
        return ResourceMatch(
            _strings(self.uris),
            _strings(self.patterns),
            _strings(self.schemes),
            _strings(self.tags),
        )


@dataclass(kw_only=True, slots=True)
class TemplateMatcher:
    """Which resource templates a rule applies to (a guard addition)."""

    uri_templates: list[str] | None = None
    names: list[str] | None = None
    patterns: list[str] | None = None
    tags: list[str] | None = None

    def to_spec(self) -> TemplateMatch:
        return TemplateMatch(
            _strings(self.uri_templates),
            _strings(self.names),
            _strings(self.patterns),
            _strings(self.tags),
        )


@dataclass(kw_only=True, slots=True)
class PromptMatcher:
    """Which prompts a rule applies to."""

    names: list[str] | None = None
    patterns: list[str] | None = None
    tags: list[str] | None = None

    def to_spec(self) -> PromptMatch:
        return PromptMatch(_strings(self.names), _strings(self.patterns), _strings(self.tags))


@dataclass(kw_only=True, slots=True)
class PolicyRule:
    """One rule: when agents, component, action and conditions all match, `effect` applies.

    Higher `priority` is evaluated first (default 100), as in mcp-auth-guard.
    """

    name: str
    effect: Effect | str
    description: str | None = None
    agents: AgentMatcher | None = None
    tools: ToolMatcher | None = None
    resources: ResourceMatcher | None = None
    resource_templates: TemplateMatcher | None = None
    prompts: PromptMatcher | None = None
    actions: list[str] = field(default_factory=lambda: ["*"])
    conditions: list[ConditionItem] = field(default_factory=list)
    priority: int = 100

    def to_spec(self) -> RuleSpec:
        """The validated-form `RuleSpec` of this rule."""
        return RuleSpec(
            name=self.name,
            effect=_effect(self.effect),
            description=self.description,
            priority=self.priority,
            agents=None if self.agents is None else self.agents.to_spec(),
            tools=None if self.tools is None else self.tools.to_spec(),
            resources=None if self.resources is None else self.resources.to_spec(),
            resource_templates=(
                None if self.resource_templates is None else self.resource_templates.to_spec()
            ),
            prompts=None if self.prompts is None else self.prompts.to_spec(),
            actions=_items(self.actions),
            conditions=tuple(_condition_spec(c) for c in self.conditions),
        )

    @classmethod
    def from_spec(cls, spec: RuleSpec) -> PolicyRule:
        """The editable form of a `RuleSpec`."""
        a, t, r, m, p = (
            spec.agents,
            spec.tools,
            spec.resources,
            spec.resource_templates,
            spec.prompts,
        )
        return cls(
            name=spec.name,
            effect=Effect(spec.effect),
            description=spec.description,
            agents=None
            if a is None
            else AgentMatcher(
                user_id=_listed(a.user_id),
                roles=_listed(a.roles),
                agent_id=_listed(a.agent_id),
                patterns=_listed(a.patterns),
            ),
            tools=None
            if t is None
            else ToolMatcher(
                names=_listed(t.names),
                patterns=_listed(t.patterns),
                namespaces=_listed(t.namespaces),
                tags=_listed(t.tags),
            ),
            resources=None
            if r is None
            else ResourceMatcher(
                uris=_listed(r.uris),
                patterns=_listed(r.patterns),
                schemes=_listed(r.schemes),
                tags=_listed(r.tags),
            ),
            resource_templates=None
            if m is None
            else TemplateMatcher(
                uri_templates=_listed(m.uri_templates),
                names=_listed(m.names),
                patterns=_listed(m.patterns),
                tags=_listed(m.tags),
            ),
            prompts=None
            if p is None
            else PromptMatcher(
                names=_listed(p.names),
                patterns=_listed(p.patterns),
                tags=_listed(p.tags),
            ),
            actions=list(spec.actions),
            conditions=[_condition_item(c) for c in spec.conditions],
            priority=spec.priority,
        )


@dataclass(kw_only=True, slots=True)
class PolicyConfig:
    """One policy document in mcp-auth-guard's object form.

    Accepted wherever the guard takes policies (`load_policies`, `PolicyEngine`,
    `GuardMiddleware`, `middleware.add_policy`), through `to_spec()`.

    Example:
        ```python
        from guard.schemas import PolicyConfig, PolicyRule

        cfg = PolicyConfig(name="p", rules=[PolicyRule(name="all", effect="allow")])
        assert cfg.to_spec().rules[0].effect == "allow"
        ```
    """

    name: str
    rules: list[PolicyRule]
    description: str | None = None
    version: str = "1.0"
    default_effect: Effect | str = Effect.DENY
    combining: Literal["first_match", "deny_overrides"] | None = None
    tags: list[str] = field(default_factory=list)
    created_by: str | None = None
    # the spec this was made from, given back unchanged while nothing was edited
    _origin: PolicySpec | None = field(default=None, init=False, repr=False, compare=False)

    def to_spec(self) -> PolicySpec:
        """The validated-form `PolicySpec` (the loaders' and the evaluator's input)."""
        origin = self._origin
        fresh = PolicySpec(
            name=self.name,
            rules=tuple(r.to_spec() for r in self.rules),
            description=self.description,
            version=str(self.version),
            default_effect=_effect(self.default_effect),
            combining=self.combining,
            tags=_items(self.tags),
            created_by=self.created_by,
            source="<builder>" if origin is None else origin.source,
        )
        if origin is not None and content_of(origin) == content_of(fresh):
            return origin
        return dataclasses.replace(fresh, text=_canonical_text(fresh))

    @classmethod
    def from_spec(cls, spec: PolicySpec) -> PolicyConfig:
        """The editable form of a `PolicySpec` (as returned by `parse_policies`)."""
        config = cls(
            name=spec.name,
            rules=[PolicyRule.from_spec(r) for r in spec.rules],
            description=spec.description,
            version=spec.version,
            default_effect=Effect(spec.default_effect),
            combining=spec.combining,
            tags=list(spec.tags),
            created_by=spec.created_by,
        )
        config._origin = spec
        return config

    @classmethod
    def model_validate(cls, data: dict[str, Any]) -> PolicyConfig:
        """Validate a policy given as a dict (mcp-auth-guard's pydantic entry point).

        Raises:
            PolicyError: every problem found, with its field.
        """
        from guard.policy.loader import parse_policies

        specs = parse_policies(data)
        if len(specs) != 1:
            raise ValueError(f"expected one policy, got {len(specs)}")
        return cls.from_spec(specs[0])

    def model_dump(self, *, exclude_none: bool = True) -> dict[str, Any]:
        """The policy as a plain dict in the YAML format."""
        from guard.policy.dump import spec_to_dict

        data: dict[str, Any] = spec_to_dict(self.to_spec())
        if exclude_none:
            data = {k: v for k, v in data.items() if v is not None}
        return data


def _canonical_text(spec: PolicySpec) -> str:
    import yaml  # loaded only when a config is converted

    from guard.policy.dump import dump_spec

    try:
        return dump_spec(spec)
    except yaml.YAMLError:  # a value YAML cannot write: the loader names it
        return ""
