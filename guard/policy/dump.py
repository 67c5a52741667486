"""Policy specs back to YAML: the canonical text of policies that were never written out.

Dicts and fluent builders have no text of their own, yet the content hash and the policy
store need one so that replay can reload the exact policy. `dump_spec` gives a stable
text (same spec, same bytes) that loads back to an equal spec; `mcp-guard format` and
`convert` print it.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import yaml

from guard.policy.spec import (
    Condition,
    ConditionGroup,
    ConditionNode,
    CustomCondition,
    PolicySpec,
    RuleSpec,
)

__all__ = ["dump_spec", "spec_to_dict"]

_MATCHER_SECTIONS = ("agents", "tools", "resources", "resource_templates", "prompts")


def spec_to_dict(spec: PolicySpec) -> dict[str, Any]:
    """The policy as plain data in the YAML format (keys in canonical order, defaults left out).

    ```python
    spec_to_dict(spec)["rules"][0]  # {'name': 'admins', 'effect': 'allow', ...}
    ```
    """
    out: dict[str, Any] = {"name": spec.name}
    if spec.description is not None:
        out["description"] = spec.description
    out["version"] = spec.version
    out["default_effect"] = spec.default_effect
    if spec.combining is not None:
        out["combining"] = spec.combining
    if spec.tags:
        out["tags"] = list(spec.tags)
    if spec.created_by is not None:
        out["created_by"] = spec.created_by
    out["rules"] = [_rule(r) for r in spec.rules]
    return out


def dump_spec(spec: PolicySpec) -> str:
    """Canonical YAML text of a policy; `parse_policies(dump_spec(s))[0]` equals `s`
    apart from `source`, `text` and line numbers.

    ```python
    from dataclasses import replace
    from guard.policy import parse_policies

    text = dump_spec(spec)
    parsed = parse_policies(text)[0]  # its rules know their lines in `text`
    assert [replace(r, line=None) for r in parsed.rules] == list(spec.rules)
    ```
    """
    return yaml.dump(
        spec_to_dict(spec),
        Dumper=_Dumper,
        sort_keys=False,
        allow_unicode=True,
        default_flow_style=False,
        width=100,
    )


class _Dumper(yaml.SafeDumper):
    """Lists of plain values on one line (`roles: [admin, user]`), as people write them."""


def _represent_list(dumper: yaml.SafeDumper, data: list[Any]) -> yaml.Node:
    flow = all(isinstance(v, str | int | float | bool) or v is None for v in data)
    return dumper.represent_sequence("tag:yaml.org,2002:seq", data, flow_style=flow)


_Dumper.add_representer(list, _represent_list)

# Line breaks inside single-quoted scalars fold on reload (NEL even becomes a space); the
# double-quoted style escapes them, so the text reloads to the same string.
_BREAKS = frozenset("\n\r\x85\u2028\u2029")


def _represent_str(dumper: yaml.SafeDumper, data: str) -> yaml.Node:
    style = '"' if not _BREAKS.isdisjoint(data) else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", data, style=style)


_Dumper.add_representer(str, _represent_str)


def _represent_datetime(dumper: yaml.SafeDumper, data: datetime) -> yaml.Node:
    offset = data.utcoffset()
    if offset is not None and offset % timedelta(minutes=1):
        # a YAML timestamp's offset is hours and minutes: Paris before 1911 (+00:09:21)
        # would be written as text that does not load back; the same instant in UTC does
        data = data.astimezone(UTC)
    return dumper.represent_datetime(data)


_Dumper.add_representer(datetime, _represent_datetime)


def _rule(rule: RuleSpec) -> dict[str, Any]:
    out: dict[str, Any] = {"name": rule.name}
    if rule.description is not None:
        out["description"] = rule.description
    out["effect"] = rule.effect
    if rule.priority != 100:
        out["priority"] = rule.priority
    for section in _MATCHER_SECTIONS:
        matcher = getattr(rule, section)
        if matcher is not None:
            out[section] = {
                name: list(getattr(matcher, name))
                for name in matcher.__dataclass_fields__
                if getattr(matcher, name) is not None
            }
    if rule.actions != ("*",):
        out["actions"] = list(rule.actions)
    if rule.conditions:
        out["conditions"] = [_condition(c) for c in rule.conditions]
    return out


def _condition(cond: ConditionNode) -> dict[str, Any]:
    if isinstance(cond, Condition):
        out = {"field": cond.field, "operator": cond.operator, "value": _plain(cond.value)}
        if cond.timezone is not None:
            out["timezone"] = cond.timezone
        return out
    if isinstance(cond, CustomCondition):
        custom: dict[str, Any] = {"custom": cond.name}
        if cond.params is not None:
            custom["params"] = _plain(cond.params)
        return custom
    if isinstance(cond, ConditionGroup):
        if cond.op == "not" and len(cond.items) == 1:
            return {"not": _condition(cond.items[0])}
        return {cond.op: [_condition(c) for c in cond.items]}
    raise TypeError(f"not a condition: {type(cond).__name__}")


def _plain(value: Any) -> Any:
    """Tuples (how specs hold lists) back to lists, which YAML can write."""
    if isinstance(value, list | tuple | frozenset | set):
        items = [_plain(v) for v in value]
        return sorted(items, key=repr) if isinstance(value, frozenset | set) else items
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    return value
