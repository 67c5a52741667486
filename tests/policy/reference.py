"""A small, obviously-correct reference evaluator for the property test.

It reads the documented semantics straight off the specs: sort every rule globally, walk
them one by one, match each part with `fnmatch`, combine. No index, no compilation, no
shortcuts. It understands only the condition operators the property test generates
(`equals`, `not_equals`, `in`, `gt`, `lt`, `contains`, `exists`, groups), with values that
are ints, digit strings or words; `gt`/`lt` compare numbers when the rule's value is a
number (digit strings count), text when both sides are words.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from fnmatch import fnmatchcase
from typing import Any

from guard.policy.model import AccessRequest, Principal, Resource
from guard.policy.spec import (
    AgentMatch,
    Condition,
    ConditionGroup,
    ConditionNode,
    PolicySpec,
    RuleSpec,
)

Verdict = tuple[bool, str, str | None, str | None]  # allowed, reason, policy, rule


def decide(specs: Sequence[PolicySpec], request: AccessRequest) -> Verdict:
    if not request.principal.authenticated:
        return False, "unauthenticated", None, None
    if not specs:
        return False, "no_policy", None, None
    stated = {s.combining for s in specs if s.combining}
    combining = stated.pop() if stated else "first_match"
    ordered = []
    for p, spec in enumerate(specs):
        for r, rule in enumerate(spec.rules):
            ordered.append((-rule.priority, p, r, rule, spec))
    ordered.sort(key=lambda t: (t[0], t[1], t[2]))
    matched = []
    for _, _, _, rule, spec in ordered:
        result = rule_matches(rule, request)
        if result is None:  # unknown: fail closed
            result = rule.effect == "deny"
        if not result:
            continue
        if combining == "first_match":
            return rule.effect == "allow", "rule", spec.name, rule.name
        matched.append((rule, spec))
    for effect in ("deny", "allow"):
        for rule, spec in matched:
            if rule.effect == effect:
                return effect == "allow", "rule", spec.name, rule.name
    allowed = all(s.default_effect == "allow" for s in specs)
    return allowed, "default", None, None


def rule_matches(rule: RuleSpec, request: AccessRequest) -> bool | None:
    if not any(fnmatchcase(request.action, a) for a in rule.actions):
        return False
    if rule.agents is not None and not agent_matches(rule.agents, request.principal):
        return False
    if not component_matches(rule, request.resource):
        return False
    return all3([evaluate(c, request) for c in rule.conditions])


def any_glob(value: str | None, patterns: Sequence[str]) -> bool:
    return any(fnmatchcase(value or "", p) for p in patterns)


def agent_matches(agents: AgentMatch, p: Principal) -> bool:
    if agents.user_id and not any_glob(p.user_id, agents.user_id):
        return False
    if agents.roles:
        if "*" in agents.roles:
            if not p.roles:
                return False
        elif not set(agents.roles) & set(p.roles):
            return False
    if agents.agent_id and not any_glob(p.agent_id, agents.agent_id):
        return False
    patterns = agents.patterns
    return not patterns or any_glob(p.user_id, patterns) or any_glob(p.agent_id, patterns)


def names_match(m: Any, name: str, tags: frozenset[str]) -> bool:
    if m.names and name not in m.names:
        return False
    if m.patterns and not any_glob(name, m.patterns):
        return False
    return not (m.tags and not set(m.tags) & tags)


def tool_matches(rule: RuleSpec, r: Resource) -> bool:
    m = rule.tools
    assert m is not None
    if m.namespaces and r.namespace not in m.namespaces:
        return False
    return names_match(m, r.name, r.tags)


def resource_matches(rule: RuleSpec, r: Resource) -> bool:
    m = rule.resources
    assert m is not None
    uri = r.uri if r.uri is not None else r.name
    if m.uris and uri not in m.uris:
        return False
    if m.patterns and not any_glob(uri, m.patterns):
        return False
    if m.schemes:
        colon = uri.find(":")
        head = uri[:colon] if colon > 0 else ""
        if (
            head[:1].isascii()
            and head[:1].isalpha()
            and all(c.isascii() and (c.isalnum() or c in "+-.") for c in head)
        ):
            scheme = head
        else:
            scheme = uri.split("://")[0] if "://" in uri else ""
        if scheme not in m.schemes:
            return False
    return not (m.tags and not set(m.tags) & r.tags)


def template_matches(rule: RuleSpec, r: Resource, template: str) -> bool:
    m = rule.resource_templates
    assert m is not None
    if m.uri_templates and template not in m.uri_templates:
        return False
    if m.patterns and not any_glob(template, m.patterns):
        return False
    if m.names and r.name not in m.names:
        return False
    return not (m.tags and not set(m.tags) & r.tags)


def component_matches(rule: RuleSpec, r: Resource) -> bool:
    natives = []
    if r.kind == "tool" and rule.tools is not None:
        natives.append(tool_matches(rule, r))
    if r.kind == "resource" and rule.resources is not None:
        natives.append(resource_matches(rule, r))
    if r.kind == "resource" and r.template is not None and rule.resource_templates is not None:
        natives.append(template_matches(rule, r, r.template))
    if r.kind == "resource_template" and rule.resource_templates is not None:
        natives.append(template_matches(rule, r, r.uri if r.uri is not None else r.name))
    if r.kind == "prompt" and rule.prompts is not None:
        natives.append(names_match(rule.prompts, r.name, r.tags))
    if natives:
        return any(natives)
    if rule.tools is not None:
        return tool_matches(rule, r)
    return all(
        m is None for m in (rule.tools, rule.resources, rule.resource_templates, rule.prompts)
    )


def all3(values: Sequence[bool | None]) -> bool | None:
    if False in values:
        return False
    return None if None in values else True


def any3(values: Sequence[bool | None]) -> bool | None:
    if True in values:
        return True
    return None if None in values else False


_MISSING = object()


def field(name: str, request: AccessRequest) -> Any:
    p = request.principal
    if name == "user.id":
        return p.user_id
    if name == "user.roles":
        return p.roles
    if name.startswith("user.claims."):
        return p.claims.get(name.removeprefix("user.claims."), _MISSING)
    if name.startswith("tool.args."):
        return request.args.get(name.removeprefix("tool.args."), _MISSING)
    raise AssertionError(f"field {name} is not generated")


def number(value: Any) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and value.isdigit():
        return int(value)
    return None


def same(a: Any, b: Any) -> bool | None:
    if a is None or b is None:
        return a is b
    if type(a) is not type(b):
        return None
    return bool(a == b)


def evaluate(cond: ConditionNode, request: AccessRequest) -> bool | None:
    if isinstance(cond, ConditionGroup):
        values = [evaluate(c, request) for c in cond.items]
        if cond.op == "all":
            return all3(values)
        if cond.op == "any":
            return any3(values)
        return None if values[0] is None else not values[0]
    assert isinstance(cond, Condition)
    actual = field(cond.field, request)
    if cond.operator == "exists":
        return actual is not _MISSING
    if actual is _MISSING:
        return None
    if cond.operator == "equals":
        return same(actual, cond.value)
    if cond.operator == "not_equals":
        result = same(actual, cond.value)
        return None if result is None else not result
    if cond.operator == "in":
        if not cond.value:
            return False
        if actual is None:
            return None in cond.value
        kinds = [v for v in cond.value if type(v) is type(actual)]
        return (actual in kinds) if kinds else None
    if cond.operator in ("gt", "lt"):
        a: Any
        b: Any = number(cond.value)
        if b is not None:  # a number (or a number written as a string): compare numbers
            a = number(actual)
        elif isinstance(cond.value, str) and isinstance(actual, str):
            a, b = actual, cond.value  # two words: compared as text
        else:
            return None
        if a is None:
            return None
        return a > b if cond.operator == "gt" else a < b
    if cond.operator == "contains":
        if actual is None:  # present without a value: no text, no items (nor numbers)
            return cond.value == "" if isinstance(cond.value, str) else None
        if isinstance(actual, tuple):
            return cond.value in actual
        if isinstance(actual, str) and isinstance(cond.value, str):
            return cond.value in actual
        return None
    raise AssertionError(f"operator {cond.operator} is not generated")


def as_mapping(verdict: Verdict) -> Mapping[str, Any]:
    return dict(zip(("allowed", "reason", "policy", "rule"), verdict, strict=True))
