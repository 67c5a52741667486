"""The validated, source-independent form of a policy document.

`load_policies` turns YAML, dicts and the fluent builder into these objects; the compiler
turns a list of them into a `PolicySet`. Nothing here evaluates anything. Every list is a
tuple (or `None` when the YAML did not say), so specs are immutable and hashable by value.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Literal

__all__ = [
    "AgentMatch",
    "Combining",
    "Condition",
    "ConditionGroup",
    "ConditionNode",
    "CustomCondition",
    "Effect",
    "PolicySpec",
    "PromptMatch",
    "ResourceMatch",
    "RuleSpec",
    "TemplateMatch",
    "ToolMatch",
    "content_of",
]

Effect = Literal["allow", "deny"]
Combining = Literal["first_match", "deny_overrides"]


@dataclass(frozen=True, slots=True)
class Condition:
    """`field operator value`, e.g. `tool.args.path path_within /srv/data`."""

    field: str
    operator: str
    value: Any
    line: int | None = None
    timezone: str | None = None  # for `request.time*` fields: IANA zone to read the clock in


@dataclass(frozen=True, slots=True)
class CustomCondition:
    """A named condition registered in Python (`register_condition`), with YAML params."""

    name: str
    params: Any = None
    line: int | None = None


@dataclass(frozen=True, slots=True)
class ConditionGroup:
    """`all` / `any` / `not` over other conditions (`not` holds exactly one)."""

    op: Literal["all", "any", "not"]
    items: tuple[ConditionNode, ...]
    line: int | None = None


ConditionNode = Condition | ConditionGroup | CustomCondition


@dataclass(frozen=True, slots=True)
class AgentMatch:
    user_id: tuple[str, ...] | None = None
    roles: tuple[str, ...] | None = None
    agent_id: tuple[str, ...] | None = None
    patterns: tuple[str, ...] | None = None


@dataclass(frozen=True, slots=True)
class ToolMatch:
    names: tuple[str, ...] | None = None
    patterns: tuple[str, ...] | None = None
    namespaces: tuple[str, ...] | None = None
    tags: tuple[str, ...] | None = None


@dataclass(frozen=True, slots=True)
class ResourceMatch:
    uris: tuple[str, ...] | None = None
    patterns: tuple[str, ...] | None = None
    schemes: tuple[str, ...] | None = None
    tags: tuple[str, ...] | None = None


@dataclass(frozen=True, slots=True)
class TemplateMatch:
    uri_templates: tuple[str, ...] | None = None
    names: tuple[str, ...] | None = None
    patterns: tuple[str, ...] | None = None
    tags: tuple[str, ...] | None = None


@dataclass(frozen=True, slots=True)
class PromptMatch:
    names: tuple[str, ...] | None = None
    patterns: tuple[str, ...] | None = None
    tags: tuple[str, ...] | None = None


@dataclass(frozen=True, slots=True)
class RuleSpec:
    name: str
    effect: Effect
    description: str | None = None
    priority: int = 100
    agents: AgentMatch | None = None
    tools: ToolMatch | None = None
    resources: ResourceMatch | None = None
    resource_templates: TemplateMatch | None = None
    prompts: PromptMatch | None = None
    actions: tuple[str, ...] = ("*",)
    conditions: tuple[ConditionNode, ...] = ()
    line: int | None = None


@dataclass(frozen=True, slots=True)
class PolicySpec:
    """One policy document.

    Attributes:
        source: where it came from (file path, `<text>`, `<dict>`, `<builder>`).
        text: the canonical text the content hash is computed over (YAML as written for
            files and text; `guard.policy.dump.dump_spec` YAML for dicts and builders).
    """

    name: str
    rules: tuple[RuleSpec, ...]
    description: str | None = None
    version: str = "1.0"
    default_effect: Effect = "deny"
    combining: Combining | None = None
    tags: tuple[str, ...] = ()
    created_by: str | None = None
    source: str = "<policy>"
    text: str = ""
    line: int | None = None  # where the policy starts in its source (YAML only)


def content_of(value: Any) -> Any:
    """`value` (a spec, or a tuple of them) without where it was written: every `line`, and
    a policy's `source` and `text`. Two specs whose contents are equal decide alike: values
    compare with their types (`True == 1` in Python, not in a condition).

    ```python
    a = PolicySpec("p", (RuleSpec("r", "allow", line=3),), source="a.yaml", text="...")
    assert content_of(a) == content_of(PolicySpec("p", (RuleSpec("r", "allow"),)))
    ```
    """
    if isinstance(value, tuple | list):
        return (type(value), tuple(content_of(v) for v in value))
    if isinstance(value, dict):
        return (dict, tuple((content_of(k), content_of(v)) for k, v in value.items()))
    if not dataclasses.is_dataclass(value) or isinstance(value, type):
        return (type(value), value)
    changes = {
        f.name: None if f.name == "line" else content_of(getattr(value, f.name))
        for f in dataclasses.fields(value)
    }
    if isinstance(value, PolicySpec):
        changes["text"] = changes["source"] = ""
    return (type(value), tuple(changes.items()))
