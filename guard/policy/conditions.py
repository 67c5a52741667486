"""Rule conditions: validation at load, compilation, and three-valued evaluation.

A condition is `field operator value` (see `guard.policy._fields` for the fields and
`guard.policy._operators` for the operators), a group `all` / `any` / `not`, or a named
custom condition registered in Python with `register_condition`.

Evaluation is three-valued. A condition is *unknown* when its field is missing, its value
cannot be normalised for the operator (`'abc' gt 5`, a path with a NUL byte, a URL with a
backslash), the value is `UNKNOWN` (replay feeds that for redacted arguments), or a custom
condition raises or returns something other than a bool. Groups combine with Kleene logic
(`all` is false if any item is false, unknown if none is false but one is unknown, ...).
The rule then fails closed: an unknown **allow** rule does not match, an unknown **deny**
rule matches. (mcp-auth-guard 1.0.0 treats every error as false, so a deny rule whose
condition cannot be evaluated is skipped: that fails open.)

```python
from guard.policy.conditions import register_condition

def business_hours(ctx):
    return 9 <= ctx["request"]["time"].hour < 17

register_condition("business_hours", business_hours)
# YAML:  conditions: [{custom: business_hours}]
```
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, date, datetime, tzinfo
from types import MappingProxyType
from typing import Any, Final
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from guard._limits import MAX_DEPTH
from guard.errors import PolicyError, PolicyProblem
from guard.policy._fields import (
    MISSING,
    UNKNOWN,
    WEEKDAYS,
    Evaluation,
    compile_field,
    field_depth,
    is_attribute,
    is_time_field,
    known_field,
    resource_type,
)
from guard.policy._operators import OPERATORS, OPERATORS_TABLE, Indeterminate
from guard.policy.spec import Condition, ConditionGroup, ConditionNode, CustomCondition

__all__ = [
    "MISSING",
    "OPERATORS",
    "SUPPORTED_FIELDS",
    "UNKNOWN",
    "CompiledCondition",
    "Evaluation",
    "compile_condition",
    "describe",
    "register_condition",
    "registered_conditions",
    "unregister_condition",
    "validate_condition",
]

CustomFn = Callable[[Mapping[str, Any]], Any]

_REGISTRY: dict[str, CustomFn] = {}


def _as_callable(name: str, fn: Any) -> CustomFn:
    if isinstance(fn, type):
        # A class: the seed's `PolicyCondition` subclasses. Calling the class would build an
        # instance, which is truthy: never treat a class as the predicate itself.
        try:
            fn = fn()
        except Exception as exc:
            raise TypeError(
                f"custom condition {name!r}: cannot instantiate {fn.__name__} without "
                f"arguments ({exc}); register an instance instead"
            ) from exc
    evaluate = getattr(fn, "evaluate", None)
    if callable(evaluate):
        return evaluate  # type: ignore[no-any-return]
    if callable(fn):
        return fn  # type: ignore[no-any-return]
    raise TypeError(f"custom condition {name!r} must be callable or have an evaluate() method")


def register_condition(name: str, fn: Any) -> None:
    """Register a named custom condition usable as `{custom: NAME, params: ...}` in YAML.

    `fn(ctx)` gets a read-only mapping with `user`, `principal`, `tool`, `resource` and
    `request` (the same names as condition fields, as nested mappings; `request.time` is
    the decision's clock as a UTC datetime) plus `params` from the YAML, and must return a
    bool. An object with an `evaluate(context)` method works too (the seed's
    `PolicyCondition` subclasses). A `PolicySet` captures the function when it is
    compiled: registering again later does not change an already loaded policy set.

    ```python
    register_condition("small_batch", lambda ctx: len(ctx["tool"]["args"]["ids"]) <= 10)
    ```
    """
    if not isinstance(name, str) or not name.strip():
        raise ValueError("custom condition name must be a non-empty string")
    _REGISTRY[name] = _as_callable(name, fn)


def unregister_condition(name: str) -> None:
    """Forget a custom condition (policy sets already compiled keep their copy)."""
    _REGISTRY.pop(name, None)


def registered_conditions() -> Mapping[str, CustomFn]:
    """A read-only view of the registered custom conditions."""
    return MappingProxyType(_REGISTRY)


# --- validation --------------------------------------------------------------------------


def _zone(name: str | None) -> tzinfo | None:
    if name is None:
        return None
    if not isinstance(name, str):
        raise ValueError("timezone must be a string such as 'Europe/Paris'")
    if name == "localtime" or name.startswith(("right/", "posix/")):
        # the host's own zone, or the zone database's variants: a decision (and its
        # replay on another machine) would depend on how that machine is set up
        raise ValueError(f"timezone {name!r} depends on the machine: name the zone itself")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):  # OSError: a folder (`Europe`)
        raise ValueError(f"unknown timezone {name!r}") from None


def _weekday(value: Any) -> Any:
    if isinstance(value, list | tuple):
        return [_weekday(v) for v in value]
    if isinstance(value, str) and value.strip().lower()[:3] in WEEKDAYS:
        text = value.strip().lower()
        index = WEEKDAYS.index(text[:3])
        full = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
        if text in (WEEKDAYS[index], full[index]):
            return index
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= 6:
        return value
    raise ValueError(f"weekday must be mon..sun or 0..6, got {value!r}")


def _instant(value: Any, zone: tzinfo | None) -> Any:
    if isinstance(value, list | tuple):
        return [_instant(v, zone) for v in value]
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, date):
        moment = datetime(value.year, value.month, value.day)
    elif isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value.strip())
        except ValueError:
            raise ValueError(f"expected an ISO date-time, got {value!r}") from None
    else:
        raise ValueError(f"expected an ISO date-time, got {value!r}")
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=zone or UTC)
    # In UTC, as the clock is read (`compile_field`): Python compares two datetimes that
    # share a tzinfo by their wall clocks, so in the zone the second 02:15 of a night that
    # falls back would come before the first 02:30, and a time in a skipped hour after
    # instants it precedes.
    return moment.astimezone(UTC)


def _field_value(cond: Condition, zone: tzinfo | None) -> Any:
    """Field-specific normalisation of the condition's value (weekday names, instants,
    tag lists)."""
    if cond.operator in ("exists", "not_exists"):
        return cond.value
    if cond.field in _TAG_FIELDS:
        if cond.operator in ("equals", "not_equals"):
            return _tag_set(cond.value)
        if cond.operator in ("in", "not_in") and isinstance(cond.value, list | tuple):
            return [_tag_set(v) for v in cond.value]
    if cond.field == "request.time.weekday":
        return _weekday(cond.value)
    if cond.field == "request.time":
        return _instant(cond.value, zone)
    if cond.field in _CLOCK_RANGES and cond.operator in _EQUALITIES:
        _check_range(cond.field, cond.value)
    if cond.field == "request.time.date" and cond.operator in _DATE_COMPARISONS:
        return _iso_dates(cond.value)
    return cond.value


# An hour or a minute no clock shows: a condition that can never hold (or always holds) is a
# mistake; the ordering operators are left alone (`hour lt 24` is a clumsy "always").
_CLOCK_RANGES: Final = {"request.time.hour": 23, "request.time.minute": 59}
_EQUALITIES: Final = frozenset({"equals", "not_equals", "in", "not_in"})


def _check_range(field: str, value: Any) -> None:
    top = _CLOCK_RANGES[field]
    for v in value if isinstance(value, list | tuple) else (value,):
        if isinstance(v, int) and not isinstance(v, bool) and not 0 <= v <= top:
            raise ValueError(f"{field} is 0 to {top}, never {v}")


# A component's tags are a set, read as a sorted tuple; mcp-auth-guard compared them in the
# order FastMCP's tag set happened to give. A list of tags written in a condition means the
# set too, so `tool.tags equals [safe, danger]` holds whatever the order.
_TAG_FIELDS: Final = frozenset({"tool.tags", "resource.tags"})


def _tag_set(value: Any) -> Any:
    if isinstance(value, list | tuple) and all(isinstance(v, str) for v in value):
        return tuple(sorted(set(value)))
    return value


# The operators that compare `request.time.date` (ISO text) with a value as a whole. Text
# compares as a date only in one form: `2025-1-5` would order after `2025-01-06` and
# equal no date, so such a value is refused; text operators (`starts_with`, `glob`) see
# the field's text.
_DATE_COMPARISONS: Final = frozenset(
    {"equals", "not_equals", "in", "not_in", "gt", "lt", "gte", "lte", "between"}
)


def _iso_dates(value: Any) -> Any:
    """A date's ISO text `YYYY-MM-DD` (YAML reads an unquoted `2024-12-24` as a date)."""
    if isinstance(value, list | tuple):
        return [_iso_dates(v) for v in value]
    if isinstance(value, datetime):
        raise ValueError("request.time.date compares with dates, not date-times")
    if isinstance(value, date):
        return value.isoformat()
    try:
        return date.fromisoformat(value.strip()).isoformat()
    except (AttributeError, ValueError):
        raise ValueError(f"request.time.date compares with ISO dates, got {value!r}") from None


def _regex_problem(pattern: str) -> str | None:
    try:
        from guard.policy._regex import regex_problem
    except ImportError:  # pragma: no cover - the loader's checker ships with the package
        return None
    found = regex_problem(pattern)
    return None if found is None else f"{found[1]} ({found[2]})"


def _prepare(cond: Condition) -> tuple[Any, tzinfo | None]:
    """Validate and normalise one leaf condition; raises ValueError with every problem."""
    if not isinstance(cond.field, str) or not cond.field or "" in cond.field.split("."):
        raise ValueError(f"invalid field {cond.field!r}")
    op = OPERATORS_TABLE.get(cond.operator)
    if op is None:
        raise ValueError(f"unknown operator {cond.operator!r}")
    if cond.operator in ("exists", "not_exists"):
        # Other operators make a field no resolver knows unknown (fail closed); presence
        # has no unknown: `exists` would never hold and `not_exists` always would.
        known, meant = known_field(cond.field)
        if not known:
            hint = f" (did you mean {meant!r}?)" if meant else ""
            raise ValueError(f"unknown field {cond.field!r}: it is never present{hint}")
    zone = _zone(cond.timezone)
    if zone is not None and not is_time_field(cond.field):
        raise ValueError("timezone applies only to request.time fields")
    value = _field_value(cond, zone)
    if cond.operator in ("regex",) and isinstance(value, str):
        problem = _regex_problem(value)
        if problem:
            raise ValueError(problem)
    return op.prepare(value), zone


def validate_condition(cond: ConditionNode, custom: Mapping[str, Any] | None = None) -> list[str]:
    """Every problem with a condition (and, for groups, its items), as sentences.

    Checks the operator, the value's type for that operator, regexes (syntax and
    catastrophic backtracking), networks, directories, hosts, time zones, and that a custom
    condition is registered (in `custom`, default: the registry).

    ```python
    validate_condition(Condition("tool.args.ip", "cidr", "10.0.0.0/33"))
    # ["tool.args.ip cidr: invalid network '10.0.0.0/33'"]
    ```
    """
    if isinstance(cond, Condition):
        try:
            _prepare(cond)
        except ValueError as exc:
            return [f"{cond.field} {cond.operator}: {exc}"]
        return []
    if isinstance(cond, CustomCondition):
        known = _REGISTRY if custom is None else custom
        if cond.name not in known:
            names = ", ".join(sorted(known)) or "none registered"
            return [
                f"unknown custom condition {cond.name!r} (known: {names}); register it with"
                " `register_condition` before loading (`mcp-guard`: `--import` the module"
                " that does)"
            ]
        return []
    if isinstance(cond, ConditionGroup):
        problems: list[str] = []
        if cond.op not in ("all", "any", "not"):
            problems.append(f"unknown condition group {cond.op!r}")
        if cond.op == "not" and len(cond.items) != 1:
            problems.append("`not` takes exactly one condition")
        for item in cond.items:
            problems.extend(validate_condition(item, custom))
        return problems
    return [f"not a condition: {type(cond).__name__}"]


# --- compiled form -----------------------------------------------------------------------


def describe(cond: ConditionNode) -> str:
    """Short human text of a condition, for explanations (never the request's values)."""
    if isinstance(cond, Condition):
        return f"{cond.field} {cond.operator} {cond.value!r}"
    if isinstance(cond, CustomCondition):
        return f"custom {cond.name}"
    inner = ", ".join(describe(i) for i in cond.items)
    return f"{cond.op}({inner})"


# How far a condition looks into a value, at most. Deeper than records keep values (a
# mapping or list `MAX_DEPTH` keys below the arguments, claims, meta or context is
# recorded as a marker: guard.audit.redact), a value is unknown, as replay reads the
# marker; the walk to find out stops there too: a hostile caller's `{"a": {"a": ...}}`
# 500 levels deep raised RecursionError (a denial for `error`, where replay decided by
# the rules), and one argument of a million keys cost every condition on it ~0.2 s.
# (`MAX_DEPTH`: guard._limits, shared with the records.)
MAX_ITEMS: Final = 10_000  # items of mappings and lists a condition's value may hold


def _unknown_within(value: Any, room: int) -> str | None:
    """Why a mapping or list is unknown to conditions (it holds `UNKNOWN`, nests `room`
    levels or more, or holds more than `MAX_ITEMS` items at any depth), or None. A room
    below 0 leaves no room even for a scalar: it lies below a cut mapping."""
    if room < 0:
        return "is nested too deep (unknown)"
    budget = MAX_ITEMS
    stack: list[tuple[Any, int]] = [(value, room)]
    while stack:
        value, room = stack.pop()
        if isinstance(value, Mapping):
            items: Any = value.values()
        elif isinstance(value, list | tuple):
            items = value
        else:
            continue
        if room <= 0:
            return "is nested too deep (unknown)"
        budget -= len(value)
        if budget < 0:
            return f"holds more than {MAX_ITEMS} items (unknown)"
        for item in items:
            if item is UNKNOWN:
                return "is redacted (unknown)"
            if type(item) not in _SCALARS:
                stack.append((item, room - 1))
    return None


class CompiledCondition:
    """A condition ready to evaluate: `evaluate(ev)` returns True, False or None (unknown).

    When the result is None, `ev.why` says why, in words that never quote request values.
    """

    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        self.text = text

    def evaluate(self, ev: Evaluation) -> bool | None:  # pragma: no cover - abstract
        raise NotImplementedError


_SCALARS: Final = frozenset({str, int, float, bool, type(None)})


class _Leaf(CompiledCondition):
    __slots__ = ("expected", "field", "resolve", "room", "test")

    def __init__(self, cond: Condition) -> None:
        super().__init__(describe(cond))
        expected, zone = _prepare(cond)
        self.field = cond.field
        self.resolve = compile_field(cond.field, zone)
        self.test = OPERATORS_TABLE[cond.operator].test
        self.expected = expected
        # levels a value under this field may nest before it is too deep
        self.room = MAX_DEPTH - field_depth(cond.field)

    def evaluate(self, ev: Evaluation) -> bool | None:
        actual = self.resolve(ev)
        if actual is MISSING:
            ev.why = f"`{self.text}`: field {self.field} is missing"
            return None
        if actual is UNKNOWN:
            ev.why = f"`{self.text}`: {self.field} is redacted (unknown)"
            return None
        if type(actual) not in _SCALARS or self.room < 0:
            why = _unknown_within(actual, self.room)
            if why is not None:
                ev.why = f"`{self.text}`: {self.field} {why}"
                return None
        try:
            return self.test(actual, self.expected)
        except Indeterminate as exc:
            ev.why = f"`{self.text}`: {exc}"
        except (TypeError, ValueError, ArithmeticError) as exc:
            ev.why = f"`{self.text}`: {type(exc).__name__}"
        return None


class _Exists(CompiledCondition):
    __slots__ = ("attribute", "present", "resolve")

    def __init__(self, cond: Condition) -> None:
        super().__init__(describe(cond))
        self.resolve = compile_field(cond.field, _zone(cond.timezone))
        self.present = cond.operator == "exists"
        # Every request has `user.agent_id`, `resource.template`, a context's `session_id`:
        # `None` there means it has none. Counted as there, `exists` held for every request
        # (an allow rule "only agents" admitted everyone). A key sent as null in args or
        # claims is there.
        self.attribute = is_attribute(cond.field)

    def evaluate(self, ev: Evaluation) -> bool | None:
        # A redacted value was there: presence is known even though the value is not.
        value = self.resolve(ev)
        there = value is not MISSING and not (value is None and self.attribute)
        return there is self.present


def _view(value: Mapping[str, Any]) -> Mapping[str, Any]:
    return MappingProxyType(dict(value))


def _copied(value: Any, room: int = MAX_DEPTH) -> Any:
    """A copy of `value` (the arguments, claims, meta or context) for custom conditions,
    of the same shape (dicts and lists: a condition may `json.dumps` it). Handed the
    request's own objects, a condition that changed them changed what the tool runs
    with, what is recorded, the component cached for later requests, and what the other
    policy set (live or shadow) decides on. Deeper than records keep values, a value is
    `UNKNOWN`, as replay reads it."""
    if isinstance(value, Mapping):
        if room <= 0:
            return UNKNOWN
        return {k: _copied(v, room - 1) for k, v in value.items()}
    if isinstance(value, list | tuple):
        if room <= 0:
            return UNKNOWN
        items = [_copied(v, room - 1) for v in value]
        return items if isinstance(value, list) else tuple(items)
    return value


def evaluation_context(ev: Evaluation) -> Mapping[str, Any]:
    """The read-only nested mapping custom conditions receive (built once per decision):
    its arguments, claims, meta and context are copies (`_copied`)."""
    context: Mapping[str, Any] | None = getattr(ev, "context", None)
    if context is None:
        req = ev.request
        p, r = req.principal, req.resource
        tags = tuple(sorted(r.tags))
        clock = ev.clock.astimezone(UTC)
        args, meta = _copied(req.args), _copied(r.meta)
        user = {
            "id": p.user_id,
            "roles": p.roles,
            "agent_id": p.agent_id,
            "authenticated": p.authenticated,
            "auth_method": p.auth_method,
            "claims": _copied(p.claims),
        }
        ev.context = MappingProxyType(
            {
                "user": _view(user),
                "principal": _view({**user, "user_id": p.user_id, "key_id": p.key_id}),
                "tool": _view(
                    {
                        "name": r.name,
                        "namespace": r.namespace,
                        "version": r.version,
                        "tags": tags,
                        "args": args,
                        "metadata": meta,
                    }
                ),
                "resource": _view(
                    {
                        "kind": r.kind,
                        "name": r.name,
                        "uri": r.uri,
                        "template": r.template,
                        "tags": tags,
                        "namespace": r.namespace,
                        "version": r.version,
                        "meta": meta,
                    }
                ),
                "request": _view(
                    {
                        "action": req.action,
                        "method": req.method,
                        "resource_type": resource_type(req),
                        "timestamp": clock.timestamp(),
                        "time": clock,
                        "args": args,
                        "context": _copied(req.context),
                    }
                ),
            }
        )
        return ev.context
    return context


class _Custom(CompiledCondition):
    __slots__ = ("fn", "name", "params")

    def __init__(self, cond: CustomCondition, fn: CustomFn) -> None:
        super().__init__(describe(cond))
        self.name = cond.name
        self.fn = fn
        self.params = cond.params

    def evaluate(self, ev: Evaluation) -> bool | None:
        ctx = MappingProxyType({**evaluation_context(ev), "params": self.params})
        try:
            result = self.fn(ctx)
        except Exception as exc:
            # Only the type: an exception message may quote request values.
            ev.why = f"custom condition {self.name!r} raised {type(exc).__name__}"
            return None
        if isinstance(result, bool):
            return result
        ev.why = f"custom condition {self.name!r} returned a {type(result).__name__}, not a bool"
        return None


class _All(CompiledCondition):
    __slots__ = ("items",)

    def __init__(self, text: str, items: tuple[CompiledCondition, ...]) -> None:
        super().__init__(text)
        self.items = items

    def evaluate(self, ev: Evaluation) -> bool | None:
        result: bool | None = True
        for item in self.items:
            value = item.evaluate(ev)
            if value is False:
                return False
            if value is None:
                result = None
        return result


class _Any(_All):
    __slots__ = ()

    def evaluate(self, ev: Evaluation) -> bool | None:
        result: bool | None = False
        for item in self.items:
            value = item.evaluate(ev)
            if value is True:
                return True
            if value is None:
                result = None
        return result


class _Not(_All):
    __slots__ = ()

    def evaluate(self, ev: Evaluation) -> bool | None:
        value = self.items[0].evaluate(ev)
        return None if value is None else not value


def compile_condition(
    cond: ConditionNode, custom: Mapping[str, Any] | None = None
) -> CompiledCondition:
    """Compile a condition tree; raises `PolicyError` listing every problem in it.

    Custom conditions are looked up in `custom` (default: the registry) now, so the
    compiled condition keeps working if the registry changes later.
    """
    problems = validate_condition(cond, custom)
    if problems:
        line = getattr(cond, "line", None)
        raise PolicyError([PolicyProblem(p, line=line, code="bad_condition") for p in problems])
    return _compile(cond, _REGISTRY if custom is None else custom)


def _compile(cond: ConditionNode, custom: Mapping[str, Any]) -> CompiledCondition:
    if isinstance(cond, Condition):
        if cond.operator in ("exists", "not_exists"):
            return _Exists(cond)
        return _Leaf(cond)
    if isinstance(cond, CustomCondition):
        fn = custom[cond.name]
        return _Custom(cond, fn if custom is _REGISTRY else _as_callable(cond.name, fn))
    items = tuple(_compile(i, custom) for i in cond.items)
    group = {"all": _All, "any": _Any, "not": _Not}[cond.op]
    return group(describe(cond), items)


SUPPORTED_FIELDS: Final = (
    "user.id",
    "user.roles",
    "user.agent_id",
    "user.authenticated",
    "user.claims.*",
    "principal.user_id",
    "principal.roles",
    "principal.agent_id",
    "principal.auth_method",
    "principal.claims.*",
    "tool.name",
    "tool.namespace",
    "tool.version",
    "tool.tags",
    "tool.args.*",
    "tool.metadata.*",
    "resource.kind",
    "resource.name",
    "resource.uri",
    "resource.template",
    "resource.tags",
    "resource.namespace",
    "resource.version",
    "resource.meta.*",
    "request.action",
    "request.method",
    "request.resource_type",
    "request.timestamp",
    "request.args.*",
    "request.context.*",
    "request.time",
    "request.time.hour",
    "request.time.minute",
    "request.time.weekday",
    "request.time.date",
)
