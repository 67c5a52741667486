"""Requests in the mapping form suite cases (and `mcp-guard explain --request`) use, read
from YAML that remembers lines, so every problem names its file, line and field."""

from __future__ import annotations

import difflib
from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, date, datetime
from typing import Any, Final

import yaml

from guard.errors import PolicyError, PolicyProblem
from guard.policy.model import KINDS, AccessRequest, Principal, Resource

__all__ = [
    "REQUEST_KEYS",
    "LineLoader",
    "LineMap",
    "Problems",
    "duplicate_keys",
    "load_yaml",
    "parse_request",
    "parse_request_node",
    "parse_time",
    "plain",
]

REQUEST_KEYS: Final = (
    "principal",
    "tool",
    "resource",
    "prompt",
    "action",
    "args",
    "time",
    "context",
)
_PRINCIPAL_KEYS: Final = (
    "user_id",
    "roles",
    "agent_id",
    "claims",
    "authenticated",
    "auth_method",
    "key_id",
)
_RESOURCE_KEYS: Final = ("kind", "name", "uri", "tags", "namespace", "version", "template", "meta")
# what a request on each kind of component does when the case does not say
_DEFAULT_ACTION: Final = {
    "tool": "call",
    "resource": "read",
    "resource_template": "read",
    "prompt": "get",
}
_METHOD_PREFIX: Final = {
    "tool": "tools",
    "resource": "resources",
    "resource_template": "resources/templates",
    "prompt": "prompts",
}


def parse_request(data: Mapping[str, Any], source: str = "<request>") -> AccessRequest:
    """Build an `AccessRequest` from the mapping form a suite case uses (without `expect`).

    Raises:
        PolicyError: the mapping is malformed (each problem names its field).

    Example:
        ```python
        request = parse_request({"principal": {"user_id": "alice", "roles": ["user"]},
                                 "tool": "get_weather", "args": {"city": "Paris"}})
        ```
    """
    node = data if isinstance(data, LineMap) else to_map(data)
    out = Problems(source)
    out.check_keys(node, REQUEST_KEYS, "")
    request = parse_request_node(node, "", out, None)
    if out or request is None:
        raise PolicyError(out)
    return request


def parse_request_node(
    raw: LineMap, where: str, out: Problems, default_time: datetime | None
) -> AccessRequest | None:
    def at(key: str) -> str:
        return f"{where}.{key}" if where else key

    before = len(out)
    principal = _parse_principal(raw, at("principal"), out)
    given = [k for k in ("tool", "resource", "prompt") if k in raw]
    resource: Resource | None = None
    if len(given) == 1:
        resource = _parse_resource(raw, given[0], at(given[0]), out)
    else:
        got = f" (got {', '.join(given)})" if given else ""
        hint = "e.g. `tool: get_weather` or `resource: weather://paris`"
        out.add(
            f"name exactly one of `tool`, `resource` or `prompt`{got}",
            raw,
            None,
            where or None,
            hint,
            "conflict" if given else "missing_key",
        )
    action = raw.get("action")
    if action is not None and not isinstance(action, str):
        out.add(
            "`action` must be a string such as call, read, get or list", raw, "action", at("action")
        )
    for key in ("args", "context"):
        if not isinstance(raw.get(key, {}), Mapping):
            out.add(f"`{key}` must be a mapping", raw, key, at(key))
        elif key in raw:
            out.check_nested(raw[key], at(key))
    when = parse_time(raw, "time", out, at("time")) if "time" in raw else None
    if len(out) > before or principal is None or resource is None:
        return None
    act = action or _DEFAULT_ACTION[resource.kind]
    prefix = _METHOD_PREFIX[resource.kind]
    if resource.kind == "resource_template" and act != "list":
        prefix = "resources"  # a read through a template is a `resources/read` live
    return AccessRequest(
        principal=principal,
        resource=resource,
        action=act,
        args=plain(raw.get("args", {})),
        time=when or default_time,
        method=f"{prefix}/{act}",
        context=plain(raw.get("context", {})),
    )


def _parse_principal(raw: LineMap, where: str, out: Problems) -> Principal | None:
    value = raw.get("principal")
    if value is None:  # no principal: an anonymous, unauthenticated caller
        return Principal.anonymous()
    if isinstance(value, str):
        return Principal(user_id=value)
    if not isinstance(value, LineMap):
        out.add("`principal` is a user id or a mapping", raw, "principal", where)
        return None
    before = len(out)
    out.check_keys(value, _PRINCIPAL_KEYS, where)
    roles = value.get("roles", [])
    roles = [roles] if isinstance(roles, str) else roles
    expected_types: dict[str, Any] = {
        "user_id": (str, int, type(None)),
        "agent_id": (str, type(None)),
        "auth_method": (str, type(None)),
        "key_id": (str, type(None)),
        "claims": Mapping,
        "authenticated": bool,
    }
    for key, types in expected_types.items():
        if key in value and not isinstance(value[key], types):
            out.add(f"`principal.{key}` has the wrong type", value, key, f"{where}.{key}")
    if "claims" in value:
        out.check_nested(value["claims"], f"{where}.claims")
    if not isinstance(roles, list) or not all(isinstance(r, str) for r in roles):
        out.add("`principal.roles` must be a list of strings", value, "roles", f"{where}.roles")
    if len(out) > before:
        return None
    user_id = value.get("user_id")
    return Principal(
        user_id=None if user_id is None else str(user_id),
        roles=tuple(roles),
        agent_id=value.get("agent_id"),
        claims=plain(value.get("claims", {})),
        authenticated=value.get("authenticated", True),
        auth_method=value.get("auth_method"),
        key_id=value.get("key_id"),
    )


def _parse_resource(raw: LineMap, key: str, where: str, out: Problems) -> Resource | None:
    value = raw[key]
    if isinstance(value, str):
        if key == "resource":
            return Resource("resource", value, uri=value)
        return Resource("tool" if key == "tool" else "prompt", value)
    if not isinstance(value, LineMap):
        out.add(f"`{key}` is a name or a mapping", raw, key, where)
        return None
    before = len(out)
    out.check_keys(value, _RESOURCE_KEYS, where)
    kind = value.get("kind", key)
    if kind not in KINDS:
        out.add(
            f"unknown kind {kind!r}",
            value,
            "kind",
            f"{where}.kind",
            f"one of {', '.join(KINDS)}",
            "bad_value",
        )
    name = value.get("name", value.get("uri"))
    if not isinstance(name, str):
        out.add(
            "a resource needs a `name` (or `uri`)",
            value,
            "name",
            f"{where}.name",
            code="missing_key",
        )
    tags = value.get("tags", [])
    tags = [tags] if isinstance(tags, str) else tags
    if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
        out.add("`tags` must be a list of strings", value, "tags", f"{where}.tags")
    for opt in ("uri", "namespace", "version", "template"):
        if value.get(opt) is not None and not isinstance(value[opt], str):
            out.add(f"`{opt}` must be a string", value, opt, f"{where}.{opt}")
    if not isinstance(value.get("meta", {}), Mapping):
        out.add("`meta` must be a mapping", value, "meta", f"{where}.meta")
    elif "meta" in value:
        out.check_nested(value["meta"], f"{where}.meta")
    if len(out) > before:
        return None
    return Resource(
        kind=kind,
        name=str(name),
        tags=frozenset(tags),
        namespace=value.get("namespace"),
        version=value.get("version"),
        uri=value.get("uri", name if kind == "resource" else None),
        template=value.get("template"),
        meta=plain(value.get("meta", {})),
    )


def parse_time(raw: LineMap, key: str, out: Problems, where: str | None = None) -> datetime | None:
    """ISO 8601 text (or a YAML timestamp); a time without a zone is taken as UTC."""
    value = raw[key]
    when: datetime | None = None
    if isinstance(value, datetime):
        when = value
    elif isinstance(value, date):
        when = datetime(value.year, value.month, value.day)
    elif isinstance(value, str):
        try:
            when = datetime.fromisoformat(value)
        except ValueError:
            when = None
    if when is None:
        out.add(
            f"`{key}` must be an ISO 8601 date-time",
            raw,
            key,
            where or key,
            "e.g. 2025-06-02T09:30:00+02:00",
            "bad_value",
        )
        return None
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)


class Problems(list[PolicyProblem]):
    """Problems found in one source, collected so all are reported at once."""

    def __init__(self, source: str) -> None:
        super().__init__()
        self.source = source

    def add(
        self,
        message: str,
        node: LineMap | None = None,
        key: str | None = None,
        where: str | None = None,
        hint: str | None = None,
        code: str = "wrong_type",
        line: int | None = None,
    ) -> None:
        if line is None and node is not None:
            line = node.lines.get(key, node.line) if key is not None else node.line
        self.append(PolicyProblem(message, self.source, line, where, hint, code))

    def check_keys(self, node: LineMap, allowed: Sequence[str], where: str) -> None:
        for key, line in node.duplicates:
            path = f"{where}.{key}" if where else str(key)
            first = node.lines.get(key)
            self.add(
                f"duplicate key {key!r} (first at line {first})",
                line=line,
                where=path,
                code="duplicate_key",
            )
        for key in node:
            if key in allowed:
                continue
            close = difflib.get_close_matches(str(key), allowed, n=1)
            hint = (
                f"did you mean `{close[0]}`?" if close else f"expected one of {', '.join(allowed)}"
            )
            path = f"{where}.{key}" if where else str(key)
            self.add(f"unknown key {key!r}", node, key, path, hint, "unknown_key")

    def check_nested(self, value: Any, where: str) -> None:
        """Keys written twice anywhere in `value` (arguments, claims, an inline policy),
        where YAML would keep the first silently."""
        for path, key, line, first in duplicate_keys(value, where):
            self.add(
                f"duplicate key {key!r} (first at line {first})",
                line=line,
                where=f"{path}.{key}",
                code="duplicate_key",
            )


def duplicate_keys(value: Any, where: str = "") -> Iterator[tuple[str, Any, int, int | None]]:
    """(path, key, line, first line) of each key written twice in a mapping anywhere in
    `value` (as `load_yaml` read it: YAML keeps one of them silently), in document order. A
    node reached twice (an alias) is visited once, so this costs the text's written size,
    never its expanded size."""
    seen: set[int] = set()
    stack: list[tuple[Any, str]] = [(value, where)]
    while stack:
        node, path = stack.pop()
        if not isinstance(node, LineMap | list) or id(node) in seen:
            continue
        seen.add(id(node))
        if isinstance(node, LineMap):
            for key, line in node.duplicates:
                yield path, key, line, node.lines.get(key)
            stack.extend(reversed([(v, f"{path}.{k}") for k, v in node.items()]))
        else:
            stack.extend(reversed([(v, f"{path}[{i}]") for i, v in enumerate(node)]))


# --------------------------------------------------------------------------- YAML with lines


class LineMap(dict[Any, Any]):
    """A mapping that remembers its own line and the line of each key (1-based)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.line: int | None = None
        self.lines: dict[Any, int] = {}
        self.duplicates: list[tuple[Any, int]] = []  # YAML keeps the last silently; we refuse


class LineLoader(yaml.SafeLoader):
    """SafeLoader whose mappings are `LineMap`s, so errors can name the line they are on."""

    def construct_object(self, node: yaml.Node, deep: bool = False) -> Any:
        try:
            return super().construct_object(node, deep)
        except (ValueError, AttributeError, KeyError, TypeError):
            # a date the calendar refuses (`2025-02-30`) or an explicit tag on text its
            # constructor cannot read (`!!timestamp 'x'`): bad YAML, at its line
            what = node.tag.rsplit(":", 1)[-1]
            if isinstance(node, yaml.ScalarNode):
                what = f"{what} {node.value[:80]!r}"
            raise yaml.constructor.ConstructorError(
                None, None, f"invalid {what}", node.start_mark
            ) from None


def _construct_map(loader: LineLoader, node: yaml.MappingNode) -> LineMap:
    # keys written in this mapping, as opposed to those a `<<` merge brings in: a merged key
    # may be overridden (YAML's rule), a key written twice is a mistake
    written = {id(k) for k, _ in node.value if k.tag != "tag:yaml.org,2002:merge"}
    loader.flatten_mapping(node)
    result = LineMap()
    result.line = node.start_mark.line + 1
    seen: set[Any] = set()
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        line = key_node.start_mark.line + 1
        if id(key_node) in written:
            if key in seen:
                result.duplicates.append((key, line))
                continue
            seen.add(key)
        result[key] = loader.construct_object(value_node, deep=True)
        result.lines[key] = line
    return result


LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_map)


def load_yaml(text: str) -> Any:
    """`yaml.load` with `LineLoader`. Raises `yaml.YAMLError`, also for nesting deeper than
    PyYAML's recursive composer and constructor can follow (a few hundred levels), which
    would otherwise escape as `RecursionError`."""
    try:
        return yaml.load(text, Loader=LineLoader)  # noqa: S506 - a SafeLoader subclass
    except RecursionError:
        raise yaml.YAMLError("nested too deeply") from None


def to_map(value: Any, memo: dict[int, Any] | None = None) -> Any:
    memo = {} if memo is None else memo
    if id(value) in memo:  # YAML aliases share one object: keep sharing, never expand
        return memo[id(value)]
    out: Any = value
    if isinstance(value, Mapping):
        out = memo[id(value)] = LineMap()
        out.update({k: to_map(v, memo) for k, v in value.items()})
    elif isinstance(value, list | tuple):
        out = memo[id(value)] = []
        out.extend(to_map(v, memo) for v in value)
    return out


def plain(value: Any, memo: dict[int, Any] | None = None) -> Any:
    """Plain dicts and lists: what the loader and the evaluator expect.

    Shared substructures (YAML aliases) stay shared, so an alias bomb ("billion laughs")
    costs its written size, not its expanded size.
    """
    memo = {} if memo is None else memo
    if id(value) in memo:
        return memo[id(value)]
    out: Any = value
    if isinstance(value, Mapping):
        out = memo[id(value)] = {}
        out.update({k: plain(v, memo) for k, v in value.items()})
    elif isinstance(value, list):
        out = memo[id(value)] = []
        out.extend(plain(v, memo) for v in value)
    return out
