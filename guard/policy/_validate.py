"""Validate one policy document (YAML value or dict) into a `PolicySpec`, finding every problem.

Each level of the format is a table of allowed keys, so an unknown key gets a
"did you mean" hint over exactly the keys allowed where it appears. Lines come from the
`YamlMap`/`YamlList` the YAML reader built; plain dicts have none.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Mapping, Sequence
from datetime import date
from typing import Any, Final, cast

from guard.errors import PolicyProblem
from guard.policy._regex import regex_problem
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
)

__all__ = ["SEED_OPERATORS", "Validator"]

# mcp-auth-guard 1.0.0's operators: used only until `guard.policy.conditions` is importable.
SEED_OPERATORS: Final = frozenset(
    {"equals", "not_equals", "in", "not_in", "contains", "not_contains", "starts_with"}
    | {"ends_with", "regex", "gt", "lt", "gte", "lte"}
)
_EFFECTS: Final = ("allow", "deny")
_COMBINING: Final = ("first_match", "deny_overrides")
_POLICY_KEYS: Final = (
    "name",
    "description",
    "version",
    "default_effect",
    "combining",
    "rules",
    "tags",
    "created_by",
)
_RULE_KEYS: Final = (
    "name",
    "description",
    "effect",
    "priority",
    "agents",
    "tools",
    "resources",
    "resource_templates",
    "prompts",
    "actions",
    "conditions",
)
# matcher section -> (its spec class, its keys, keys that also take a single string (seed))
_MATCHERS: Final[dict[str, tuple[type, tuple[str, ...], tuple[str, ...]]]] = {
    "agents": (AgentMatch, ("user_id", "roles", "agent_id", "patterns"), ("user_id", "agent_id")),
    "tools": (ToolMatch, ("names", "patterns", "namespaces", "tags"), ()),
    "resources": (ResourceMatch, ("uris", "patterns", "schemes", "tags"), ()),
    "resource_templates": (TemplateMatch, ("uri_templates", "names", "patterns", "tags"), ()),
    "prompts": (PromptMatch, ("names", "patterns", "tags"), ()),
}
_CONDITION_KEYS: Final = ("field", "operator", "value", "timezone")
_CONDITION_FORMS: Final = ("field", "all", "any", "not", "custom")
_REGEX_OPERATORS: Final = frozenset({"regex"})
_UNARY_OPERATORS: Final = frozenset({"exists", "not_exists"})  # no `value` needed


def _operators() -> tuple[frozenset[str], Callable[[Condition], list[str]] | None]:
    """The evaluator's operators and value checker, or the seed's operators until it exists."""
    try:
        from guard.policy import conditions
    except ImportError:
        return SEED_OPERATORS, None
    ops = getattr(conditions, "OPERATORS", None)
    check = getattr(conditions, "validate_condition", None)
    return (frozenset(ops) if ops else SEED_OPERATORS), check


def _type_name(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, list | tuple):
        return "a list"
    return f"a {type(value).__name__}"


def _suggest(key: str, allowed: Sequence[str]) -> str | None:
    close = difflib.get_close_matches(key, allowed, n=1, cutoff=0.6)
    return f"did you mean `{close[0]}`?" if close else None


class Validator:
    """Collects problems for one source while building specs from its documents.

    ```python
    v = Validator("<dict>")
    spec = v.policy({"name": "p", "rules": []}, text="")
    assert spec is not None and not v.problems
    ```
    """

    def __init__(self, source: str) -> None:
        self.source = source
        self.problems: list[PolicyProblem] = []
        self._ops, self._check = _operators()

    # -- reporting -----------------------------------------------------------------------

    def problem(
        self,
        code: str,
        message: str,
        field: str | None,
        line: int | None,
        hint: str | None = None,
    ) -> None:
        self.problems.append(PolicyProblem(message, self.source, line, field or None, hint, code))

    @staticmethod
    def _line(container: Any, key: Any) -> int | None:
        """Line of `container[key]` when the container came from YAML."""
        if isinstance(key, int):
            lines = getattr(container, "item_lines", None)
            return lines[key] if lines and key < len(lines) else getattr(container, "line", None)
        key_lines = getattr(container, "key_lines", None)
        if key_lines and key in key_lines:
            return cast(int, key_lines[key])
        return getattr(container, "line", None)

    def _keys(
        self, mapping: Mapping[str, Any], allowed: Sequence[str], path: str, what: str
    ) -> None:
        for key in mapping:
            if key not in allowed:
                hint = _suggest(str(key), allowed) or f"allowed in {what}: {', '.join(allowed)}"
                self.problem(
                    "unknown_key",
                    f"unknown key `{key}` in {what}",
                    f"{path}.{key}" if path else str(key),
                    self._line(mapping, key),
                    hint,
                )

    def _wrong_type(self, where: Any, key: Any, path: str, expected: str, got: Any) -> None:
        hint = None
        if expected.startswith("a list") and isinstance(got, str):
            hint = f"write a list: `[{got}]`"
        elif expected.startswith("a list") and isinstance(got, Mapping):
            hint = "make it a list: start each item with `- `"
        self.problem(
            "wrong_type",
            f"must be {expected}, not {_type_name(got)}",
            path,
            self._line(where, key),
            hint,
        )

    # -- field readers -------------------------------------------------------------------

    def _str(self, m: Mapping[str, Any], key: str, path: str, required: bool = False) -> Any:
        value = m.get(key)
        if value is None:
            if required:
                self._missing(m, key, path)
            return None
        if not isinstance(value, str):
            self._wrong_type(m, key, path, "a string", value)
            return None
        if required and not value.strip():
            self.problem("bad_value", f"`{key}` must not be empty", path, self._line(m, key))
            return None
        return value

    def _missing(self, m: Mapping[str, Any], key: str, path: str) -> None:
        what = "is null" if key in m else "is missing"
        self.problem("missing_field", f"required field `{key}` {what}", path, self._line(m, None))

    def _str_list(
        self, m: Mapping[str, Any], key: str, path: str, single_ok: bool = False
    ) -> tuple[str, ...] | None:
        value = m.get(key)
        if value is None:
            return None
        if single_ok and isinstance(value, str):
            # `user_id: ""` says nothing, as `[]` (mcp-auth-guard read it as not given; as
            # one empty id, a deny rule `agents: {user_id: ""}` would spare everyone)
            return (value,) if value else None
        if not isinstance(value, list | tuple):
            expected = "a string or a list of strings" if single_ok else "a list of strings"
            self._wrong_type(m, key, path, expected, value)
            return None
        items: list[str] = []
        for i, item in enumerate(value):
            if isinstance(item, str):
                items.append(item)
            else:
                self._wrong_type(value, i, f"{path}[{i}]", "a string", item)
        return tuple(items)

    def _enum(self, m: Mapping[str, Any], key: str, path: str, allowed: Sequence[str]) -> Any:
        value = m.get(key)
        if value is None:
            return None
        if not isinstance(value, str):
            self._wrong_type(m, key, path, f"one of {', '.join(allowed)}", value)
            return None
        if value.lower() in allowed:  # the seed lower-cases `default_effect`; accept any case
            return value.lower()
        self.problem(
            "bad_value",
            f"`{value}` is not one of {', '.join(allowed)}",
            path,
            self._line(m, key),
            _suggest(value.lower(), allowed) or f"use one of: {', '.join(allowed)}",
        )
        return None

    def _mapping(self, m: Any, key: Any, path: str, value: Any) -> bool:
        if isinstance(value, Mapping):
            return True
        self._wrong_type(m, key, path, "a mapping", value)
        return False

    # -- the document --------------------------------------------------------------------

    def policy(
        self, doc: Any, text: str, prefix: str = "", line: int | None = None
    ) -> PolicySpec | None:
        """Build one `PolicySpec` from a document; `None` if it has problems (all recorded)."""
        before = len(self.problems)
        if not isinstance(doc, Mapping):
            self.problem(
                "not_a_mapping",
                f"a policy must be a mapping, not {_type_name(doc)}",
                prefix or None,
                getattr(doc, "line", line),
                "start with `name: ...` and `rules: [...]`",
            )
            return None
        p = prefix + "." if prefix else ""
        self._keys(doc, _POLICY_KEYS, prefix, "a policy")
        name = self._str(doc, "name", p + "name", required=True)
        description = self._str(doc, "description", p + "description")
        version = self._version(doc, p + "version")
        default_effect = self._enum(doc, "default_effect", p + "default_effect", _EFFECTS)
        combining = self._enum(doc, "combining", p + "combining", _COMBINING)
        tags = self._str_list(doc, "tags", p + "tags")
        created_by = self._str(doc, "created_by", p + "created_by")
        rules = self._rules(doc, p + "rules")
        if len(self.problems) > before or name is None or rules is None:
            return None
        spec = PolicySpec(
            name=name,
            rules=rules,
            description=description,
            version=version,
            default_effect=default_effect or "deny",
            combining=combining,
            tags=tags or (),
            created_by=created_by,
            source=self.source,
            text=text,
            line=getattr(doc, "line", None),
        )
        return spec

    def _version(self, doc: Mapping[str, Any], path: str) -> str:
        value = doc.get("version")
        if value is None:
            return "1.0"
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            self._wrong_type(doc, "version", path, "a string or a number", value)
            return "1.0"
        raw = getattr(doc, "raw", {}).get("version")  # `1.10` as written, not the float 1.1
        return raw if isinstance(raw, str) else str(value)

    def _rules(self, doc: Mapping[str, Any], path: str) -> tuple[RuleSpec, ...] | None:
        value = doc.get("rules")
        if value is None:
            self._missing(doc, "rules", path)
            return None
        if not isinstance(value, list | tuple):
            self._wrong_type(doc, "rules", path, "a list of rules", value)
            return None
        rules: list[RuleSpec] = []
        first_seen: dict[str, int | None] = {}
        for i, item in enumerate(value):
            rule = self._rule(value, i, f"{path}[{i}]")
            if rule is not None:
                rules.append(rule)
            # names are checked even on rules with other problems, so both get reported
            name = item.get("name") if isinstance(item, Mapping) else None
            if not isinstance(name, str):
                continue
            if name in first_seen:
                where = first_seen[name]
                self.problem(
                    "duplicate_rule",
                    f"rule name `{name}` is used twice in this policy",
                    f"{path}[{i}].name",
                    self._line(item, "name"),
                    f"the first is on line {where}; rule names must be unique"
                    if where
                    else "rule names must be unique within a policy",
                )
            first_seen.setdefault(name, getattr(item, "line", None))
        return tuple(rules)

    def _rule(self, rules: Sequence[Any], i: int, path: str) -> RuleSpec | None:
        r = rules[i]
        if not self._mapping(rules, i, path, r):
            return None
        before = len(self.problems)
        self._keys(r, _RULE_KEYS, path, "a rule")
        name = self._str(r, "name", path + ".name", required=True)
        description = self._str(r, "description", path + ".description")
        effect = self._enum(r, "effect", path + ".effect", _EFFECTS)
        if "effect" not in r or r["effect"] is None:
            self._missing(r, "effect", path + ".effect")
        priority = 100
        if r.get("priority") is not None:
            value = _integer(r["priority"])
            if value is None:
                self._wrong_type(r, "priority", path + ".priority", "an integer", r["priority"])
            else:
                priority = value
        matchers: dict[str, Any] = {}
        for section, (cls, keys, single) in _MATCHERS.items():
            if r.get(section) is None:
                continue
            section_path = f"{path}.{section}"
            m = r[section]
            if not self._mapping(r, section, section_path, m):
                continue
            self._keys(m, keys, section_path, f"`{section}`")
            fields = {k: self._str_list(m, k, f"{section_path}.{k}", k in single) for k in keys}
            matchers[section] = cls(**fields)
        actions = self._str_list(r, "actions", path + ".actions")
        conditions = self._conditions(r, path + ".conditions")
        if len(self.problems) > before or name is None or effect is None:
            return None
        return RuleSpec(
            name=name,
            effect=effect,
            description=description,
            priority=priority,
            actions=actions if actions is not None else ("*",),
            conditions=conditions,
            line=getattr(r, "line", None),
            **matchers,
        )

    # -- conditions ----------------------------------------------------------------------

    def _conditions(self, r: Mapping[str, Any], path: str) -> tuple[ConditionNode, ...]:
        value = r.get("conditions")
        if value is None:
            return ()
        if not isinstance(value, list | tuple):
            self._wrong_type(r, "conditions", path, "a list of conditions", value)
            return ()
        nodes = [self._condition(value, i, f"{path}[{i}]") for i in range(len(value))]
        return tuple(n for n in nodes if n is not None)

    def _condition(self, parent: Any, key: Any, path: str, depth: int = 0) -> ConditionNode | None:
        c = parent[key]
        if not self._mapping(parent, key, path, c):
            return None
        line = getattr(c, "line", None) or self._line(parent, key)
        if depth >= MAX_CONDITION_DEPTH:
            # whatever the source: a dict or builder is not stopped by YAML's own limit,
            # and the policy's canonical text (what replay reloads) must load again
            self.problem(
                "too_deep",
                f"conditions nested more than {MAX_CONDITION_DEPTH} deep",
                path,
                line,
                "flatten the groups: `all` / `any` take many conditions",
            )
            return None
        forms = [k for k in _CONDITION_FORMS if k in c]
        if len(forms) != 1:
            known = (*_CONDITION_FORMS, *_CONDITION_KEYS, "params")
            hint = None
            for k in c:
                if k not in known:
                    hint = hint or _suggest(str(k), known)
            self.problem(
                "bad_condition",
                "a condition has exactly one of `field` (with `operator` and `value`), "
                f"`all`, `any`, `not` or `custom`; found {', '.join(forms) or 'none'}",
                path,
                line,
                hint,
            )
            return None
        form = forms[0]
        if form == "field":
            return self._field_condition(c, path, line)
        if form == "custom":
            self._keys(c, ("custom", "params"), path, "a custom condition")
            name = self._str(c, "custom", path + ".custom", required=True)
            if self._unwritable(c.get("params"), path + ".params", line):
                return None
            return None if name is None else CustomCondition(name, _freeze(c.get("params")), line)
        self._keys(c, (form,), path, f"an `{form}` condition")
        items = c[form]
        sub = f"{path}.{form}"
        if form == "not":
            if isinstance(items, list | tuple):
                self.problem(
                    "wrong_type",
                    "`not` takes one condition, not a list",
                    sub,
                    self._line(c, form),
                    "wrap several in `any` or `all`: `not: {any: [...]}`",
                )
                return None
            inner = self._condition(c, form, sub, depth + 1)
            return None if inner is None else ConditionGroup("not", (inner,), line)
        if items is not None and not isinstance(items, list | tuple):
            self._wrong_type(c, form, sub, "a list of conditions", items)
            return None
        if not items:
            self.problem(
                "empty_group",
                f"`{form}` needs at least one condition",
                sub,
                self._line(c, form),
                "an empty group is ambiguous; remove it or add conditions",
            )
            return None
        nodes = [self._condition(items, i, f"{sub}[{i}]", depth + 1) for i in range(len(items))]
        if any(n is None for n in nodes):
            return None
        return ConditionGroup(form, tuple(n for n in nodes if n is not None), line)  # type: ignore[arg-type]

    def _field_condition(
        self, c: Mapping[str, Any], path: str, line: int | None
    ) -> Condition | None:
        before = len(self.problems)
        self._keys(c, _CONDITION_KEYS, path, "a condition")
        field = self._str(c, "field", path + ".field", required=True)
        operator = self._str(c, "operator", path + ".operator", required=True)
        if "value" not in c and operator not in _UNARY_OPERATORS:
            self._missing(c, "value", path + ".value")
        if operator in _UNARY_OPERATORS and c.get("value") is not None:
            self.problem(
                "bad_value",
                f"`{operator}` takes no value",
                path + ".value",
                self._line(c, "value"),
                "use `not_exists` for a field that must be absent"
                if operator == "exists"
                else "use `exists` for a field that must be present",
            )
        timezone = self._str(c, "timezone", path + ".timezone")
        if operator is not None and operator not in self._ops:
            self.problem(
                "unknown_operator",
                f"unknown operator `{operator}`",
                path + ".operator",
                self._line(c, "operator"),
                _suggest(operator, sorted(self._ops))
                or f"operators: {', '.join(sorted(self._ops))}",
            )
        self._unwritable(c.get("value"), path + ".value", line)
        if len(self.problems) > before or field is None or operator is None:
            return None
        value = _freeze(c.get("value"))
        if operator in _REGEX_OPERATORS and self._regexes(c, path + ".value", value):
            return None
        cond = Condition(field, operator, value, line, timezone)
        if self._check is not None:
            try:
                messages = self._check(cond)
            except Exception as exc:  # a checker bug must not hide the policy's problems
                messages = [f"could not be checked: {exc}"]
            for message in messages:
                self.problem("bad_value", message, path, line)
            if messages:
                return None
        return cond

    def _unwritable(self, value: Any, path: str, line: int | None) -> bool:
        """Report a value YAML cannot carry (dicts and builders only: YAML text cannot hold
        one); True if found. The policy's canonical text is what the content hash covers and
        replay reloads, so it must load back to the same policy."""
        if isinstance(value, _YAML_SCALARS):
            return False
        if isinstance(value, list | tuple | set | frozenset):
            return any(self._unwritable(v, f"{path}[{i}]", line) for i, v in enumerate(value))
        if isinstance(value, Mapping):
            for k, v in value.items():
                if not isinstance(k, str):
                    self.problem(
                        "bad_value",
                        f"key {k!r} is not a string",
                        path,
                        line,
                        f'policy text has string keys only: "{k}"',
                    )
                    return True
                if self._unwritable(v, f"{path}.{k}", line):
                    return True
            return False
        message = f"{_type_name(value)} cannot be written in a policy"
        hint = "use strings, numbers, booleans, null, lists and mappings"
        self.problem("bad_value", message, path, line, hint)
        return True

    def _regexes(self, c: Mapping[str, Any], path: str, value: Any) -> bool:
        """Report invalid or catastrophic regexes; True if any."""
        patterns = value if isinstance(value, tuple) else (value,)
        found = False
        for i, pattern in enumerate(patterns):
            where = f"{path}[{i}]" if isinstance(value, tuple) else path
            if isinstance(pattern, int | float) and not isinstance(pattern, bool):
                pattern = str(pattern)  # `regex: 75`: its text, as mcp-auth-guard read it
            if not isinstance(pattern, str):
                message = f"`regex` needs a string, not {_type_name(pattern)}"
                hint = f'quote it: value: "{pattern}"'
                self.problem("bad_value", message, where, self._line(c, "value"), hint)
                found = True
                continue
            bad = regex_problem(pattern)
            if bad is not None:
                code, message, hint = bad
                self.problem(code, message, where, self._line(c, "value"), hint)
                found = True
        return found


# an integer as text, `5.0` too (as pydantic read it), of a sane size: `int()` of anything
# `isdigit()` accepts would raise on `²` or on 5,000 digits
# what the YAML reader builds from a scalar (`_yaml._SCALAR_KINDS`)
_YAML_SCALARS: Final = (str, int, float, bool, type(None), bytes, date)
MAX_CONDITION_DEPTH: Final = 64  # condition groups inside groups; real policies use a few
_INTEGER_TEXT: Final = re.compile(r"[+-]?[0-9]{1,18}(?:\.0*)?")


def _integer(value: Any) -> int | None:
    """An integer, also from `5.0` or `"5"` as mcp-auth-guard (pydantic) accepted; never a bool."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and _INTEGER_TEXT.fullmatch(value.strip()):
        return int(value.strip().partition(".")[0])
    return None


def _freeze(value: Any) -> Any:
    """Lists become tuples (specs are immutable); YAML containers become plain ones."""
    if isinstance(value, list | tuple):
        return tuple(_freeze(v) for v in value)
    if isinstance(value, Mapping):
        return {k: _freeze(v) for k, v in value.items()}
    return value
