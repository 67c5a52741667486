"""Condition fields: a dotted name (`tool.args.path`) compiled into a resolver.

A resolver reads one value out of an `Evaluation` (the request being decided plus its
clock). Resolvers are built once per condition at compile time, so deciding never parses
a field name. Every name mcp-auth-guard 1.0.0 understood works (`user.*`, `tool.*`,
`request.*`); `principal.*`, `resource.*`, `request.args.*`, `request.context.*` and the
clock fields `request.time[.hour|.minute|.weekday|.date]` are additions.

A field that is not there resolves to `MISSING` (a key absent from args, claims, meta or
context, or a name no resolver knows): conditions on it come out *unknown*. An attribute
the model always has but which is `None` (e.g. `user.agent_id` without an agent) resolves
to `None`, which `equals`/`in` compare like any value; `exists` counts it as absent, as it
does a request context's `None` (`session_id` without a session). A key the caller gave
with a null value, in args or claims, is present.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime, tzinfo
from difflib import SequenceMatcher
from typing import Any, Final

from guard.policy.model import AccessRequest

__all__ = [
    "MISSING",
    "UNKNOWN",
    "WEEKDAYS",
    "Evaluation",
    "Resolver",
    "compile_field",
    "field_depth",
    "is_attribute",
    "is_time_field",
    "known_field",
]


class _Sentinel:
    __slots__ = ("_name",)

    def __init__(self, name: str) -> None:
        self._name = name

    def __repr__(self) -> str:
        return self._name

    def __reduce__(self) -> str:  # pickling keeps identity
        return self._name


MISSING: Final = _Sentinel("MISSING")
"""The field is not present in the request."""

UNKNOWN: Final = _Sentinel("UNKNOWN")
"""A value that was there but is not known (replay feeds it for redacted arguments)."""

WEEKDAYS: Final = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


class Evaluation:
    """Per-decision scratch state: the request, its clock, and why a condition was unknown.

    The clock is read once per decision (`AccessRequest.time`, or now in UTC), so every
    time condition of one decision sees the same instant.
    """

    __slots__ = ("_clock", "context", "request", "why")

    context: Mapping[str, Any]  # custom conditions' view, set when first needed
    why: str  # set by a condition that comes out unknown, before it returns None

    def __init__(self, request: AccessRequest) -> None:
        # Only what every decision needs: this object is built on the hot path.
        self.request = request
        self._clock: datetime | None = None

    @property
    def clock(self) -> datetime:
        clock = self._clock
        if clock is None:
            clock = self.request.time
            if clock is None:
                clock = datetime.now(UTC)
            elif clock.tzinfo is None:  # a naive clock is read as UTC, never as local time
                clock = clock.replace(tzinfo=UTC)
            self._clock = clock
        return clock


Resolver = Callable[[Evaluation], Any]


def walk(value: Any, keys: tuple[str, ...]) -> Any:
    """Follow `keys` through nested mappings (and list indexes); `MISSING` if absent."""
    for key in keys:
        if value is UNKNOWN:
            return UNKNOWN
        if isinstance(value, Mapping):
            if key not in value:
                return MISSING
            value = value[key]
        elif isinstance(value, list | tuple) and key.isascii() and key.isdigit():
            index = int(key)
            if index >= len(value):
                return MISSING
            value = value[index]
        else:
            return MISSING
    return value


# `request.resource_type` as mcp-auth-guard 1.0.0 set it: the MCP method's prefix
# (`tools/call` -> `tools`), or for a request without a method, its kind's plural.
_RESOURCE_TYPE_OF_KIND: Final = {
    "tool": "tools",
    "resource": "resources",
    "resource_template": "resources",
    "prompt": "prompts",
}


def resource_type(request: Any) -> str:
    method = request.method
    if method:
        return str(method).split("/", 1)[0]
    kind = str(request.resource.kind)
    return _RESOURCE_TYPE_OF_KIND.get(kind, kind)


def _tags(ev: Evaluation) -> tuple[str, ...]:
    return tuple(sorted(ev.request.resource.tags))


# Scalar fields: exact name -> resolver.
_SCALARS: Final[dict[str, Resolver]] = {
    "user.id": lambda ev: ev.request.principal.user_id,
    "user.roles": lambda ev: ev.request.principal.roles,
    "user.agent_id": lambda ev: ev.request.principal.agent_id,
    "user.authenticated": lambda ev: ev.request.principal.authenticated,
    "user.auth_method": lambda ev: ev.request.principal.auth_method,
    "principal.user_id": lambda ev: ev.request.principal.user_id,
    "principal.roles": lambda ev: ev.request.principal.roles,
    "principal.agent_id": lambda ev: ev.request.principal.agent_id,
    "principal.authenticated": lambda ev: ev.request.principal.authenticated,
    "principal.auth_method": lambda ev: ev.request.principal.auth_method,
    "principal.key_id": lambda ev: ev.request.principal.key_id,
    "tool.name": lambda ev: ev.request.resource.name,
    "tool.namespace": lambda ev: ev.request.resource.namespace,
    "tool.version": lambda ev: ev.request.resource.version,
    "tool.tags": _tags,
    "resource.kind": lambda ev: ev.request.resource.kind,
    "resource.name": lambda ev: ev.request.resource.name,
    "resource.uri": lambda ev: ev.request.resource.uri,
    "resource.template": lambda ev: ev.request.resource.template,
    "resource.tags": _tags,
    "resource.namespace": lambda ev: ev.request.resource.namespace,
    "resource.version": lambda ev: ev.request.resource.version,
    "request.action": lambda ev: ev.request.action,
    "request.method": lambda ev: ev.request.method,
    "request.resource_type": lambda ev: resource_type(ev.request),
    "request.timestamp": lambda ev: ev.clock.timestamp(),
}

# Mapping-valued fields whose sub-keys are looked up: prefix -> resolver of the mapping.
_MAPPINGS: Final[dict[str, Resolver]] = {
    "user.claims": lambda ev: ev.request.principal.claims,
    "principal.claims": lambda ev: ev.request.principal.claims,
    "tool.args": lambda ev: ev.request.args,
    "request.args": lambda ev: ev.request.args,
    "tool.metadata": lambda ev: ev.request.resource.meta,
    "resource.meta": lambda ev: ev.request.resource.meta,
    "request.context": lambda ev: ev.request.context,
}

_TIME_PARTS: Final[dict[str, Callable[[datetime], Any]]] = {
    "request.time": lambda t: t,
    "request.time.hour": lambda t: t.hour,
    "request.time.minute": lambda t: t.minute,
    "request.time.weekday": lambda t: t.weekday(),
    "request.time.date": lambda t: t.date().isoformat(),
}


def is_time_field(name: str) -> bool:
    """Whether `name` is one of the clock fields (which honour a condition's `timezone`)."""
    return name in _TIME_PARTS


def is_attribute(name: str) -> bool:
    """Whether `name` is a fact the guard states for every request (`user.agent_id`,
    `resource.uri`, `request.context.session_id`), whose `None` says the request has none:
    for `exists`, it is present only with a value."""
    return name in _SCALARS or name.startswith("request.context.")


def _missing(ev: Evaluation) -> Any:
    return MISSING


def compile_field(name: str, zone: tzinfo | None = None) -> Resolver:
    """The resolver for field `name`; clock fields are read in `zone` (default UTC).

    ```python
    resolve = compile_field("tool.args.path")
    resolve(Evaluation(request))  # request.args["path"], or MISSING
    ```
    """
    part = _TIME_PARTS.get(name)
    if part is not None:
        if zone is None or name == "request.time":  # an instant: compared in UTC, as its value
            return lambda ev: part(ev.clock.astimezone(UTC))
        target = zone
        return lambda ev: part(ev.clock.astimezone(target))
    scalar = _SCALARS.get(name)
    if scalar is not None:
        return scalar
    for prefix, mapping in _MAPPINGS.items():
        if name == prefix:
            return mapping
        if name.startswith(prefix + "."):
            keys = tuple(name[len(prefix) + 1 :].split("."))
            if len(keys) == 1:
                key = keys[0]

                def one(ev: Evaluation, get: Resolver = mapping, key: str = key) -> Any:
                    value = get(ev)
                    if type(value) is dict or isinstance(value, Mapping):  # dict: skip the ABC
                        return value.get(key, MISSING)
                    return MISSING

                return one

            def deep(ev: Evaluation, get: Resolver = mapping, keys: tuple[str, ...] = keys) -> Any:
                return walk(get(ev), keys)

            return deep
    return _missing


def field_depth(name: str) -> int:
    """How many keys below the arguments, claims, meta or context a field reads (their
    records count levels from there): `tool.args.city` 1, `tool.args` 0, `user.id` 0."""
    for prefix in _MAPPINGS:
        if name.startswith(prefix + "."):
            return name.count(".") - prefix.count(".")
    return 0


def known_field(name: str) -> tuple[bool, str | None]:
    """Whether a resolver knows `name` (else it is always `MISSING`), and if not, the
    field probably meant (`tool.arg.path` -> `tool.args.path`), if one is close."""
    if compile_field(name) is not _missing:
        return True, None
    parts = name.split(".")
    meant, best = None, 0.6  # difflib's cut-off for "close"
    for known in (*_TIME_PARTS, *_SCALARS, *_MAPPINGS):
        head = ".".join(parts[: known.count(".") + 1])  # as many parts as the known name
        ratio = SequenceMatcher(None, head, known).ratio()
        if head != known and ratio > best:
            meant, best = known + name[len(head) :], ratio
    return False, meant
