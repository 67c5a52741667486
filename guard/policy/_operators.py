"""Condition operators: how a field's value is compared with a condition's value.

Each operator has a `prepare` step, run once at load (it validates and normalises the
condition's value, raising `ValueError` with a message the loader shows), and a `test`
step, run per decision on `(actual, prepared)`. A `test` that cannot compare raises
`Indeterminate`: the condition is then *unknown*, and the rule fails closed.

Differences from mcp-auth-guard 1.0.0, each a bug there:

- `contains` on a list is membership, not a substring test on the list's text form; on a
  mapping it is a key, or the text within a key or value at any depth (as the mapping's
  text there, without its quotes and braces);
- an attribute that is present without a value (`user.agent_id` of a caller without an
  agent) has no text: `contains` / `starts_with` / `ends_with` / `regex` are false there
  (not the text `"None"`), and so is `glob`; a condition that the empty text satisfies
  (`glob "*"`, `regex ".*"`, `contains ""`, `starts_with ""`) is unknown there (an allow
  rule must not admit a missing value with it);
- `regex` must match the whole value (`re.fullmatch`), not just a prefix;
- comparing values of different types (`'10' gt 9` aside, see below) is an error, never a
  silent False that a deny rule would skip;
- `gt`/`lt`/`gte`/`lte`/`between` read numbers given as strings as decimals (`'10' > 9`),
  and reject `nan`/`inf`.

Typed operators, for arguments a model fills in (each fails closed on what it cannot parse):

- `path_within DIR | [DIRS]`: the path, made absolute against `/` with `.` and `..`
  collapsed (lexically: symlinks are not resolved), lies in one of the directories. NUL
  bytes and backslashes are refused.
- `url_host HOST | [HOSTS]`: the host the URL really names (`http://good.com@evil.com` is
  `evil.com`), lower-cased, without a trailing dot, IDNA-encoded; `*.example.com` matches
  subdomains only. URLs with backslashes, spaces or control characters are refused.
- `cidr NET | [NETS]`: the IP address lies in a network; IPv4-mapped IPv6 counts as IPv4.
- `glob PATTERN | [PATTERNS]`: case-sensitive `fnmatch` on the whole value.
- `len_lte` / `len_gte N`: length of a string, list or mapping; `size_lte N`: bytes of
  the value's canonical JSON (sorted keys, no spaces, UTF-8).
- `exists` / `not_exists`: whether the field is present (a redacted value is present).
"""

from __future__ import annotations

import ipaddress
import json
import posixpath
import re
import socket
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from fnmatch import translate
from typing import Any, Final
from urllib.parse import urlsplit

from guard._limits import HUGE_INT, LEAST_INT

__all__ = ["OPERATORS", "Indeterminate", "Operator", "kind_of"]


class Indeterminate(Exception):
    """The operator could not compare these values; the condition is unknown."""


@dataclass(frozen=True, slots=True)
class _Object:
    """A mapping's normal form (`_norm`): equal only to another mapping's, never to the
    list of its pairs, and still an object to `kind_of` once a condition's value is
    prepared."""

    items: tuple[tuple[str, Any], ...]


def kind_of(value: Any) -> str:
    """The JSON-ish type name used to refuse cross-type comparisons."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float | Decimal):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, datetime):
        return "datetime"
    if isinstance(value, date):
        return "date"
    if isinstance(value, list | tuple | frozenset | set):
        return "list"
    if isinstance(value, Mapping | _Object):
        return "object"
    return type(value).__name__


def _norm(value: Any) -> Any:
    """Hashable, order-preserving form: lists become tuples, mappings `_Object`s of sorted
    items. Normal forms are their own."""
    if isinstance(value, list | tuple):
        return tuple(_norm(v) for v in value)
    if isinstance(value, Mapping):
        return _Object(tuple(sorted((str(k), _norm(v)) for k, v in value.items())))
    if isinstance(value, set | frozenset):
        return tuple(sorted(_norm(v) for v in value))
    return value


@dataclass(frozen=True, slots=True)
class _Bool:
    """A boolean inside a list or mapping (`_strict`): never equal to a number."""

    value: bool


def _strict(value: Any) -> Any:
    """A normal form in which `true` is not `1` at any depth (Python's `==` says it is)."""
    if isinstance(value, bool):
        return _Bool(value)
    if isinstance(value, tuple):
        return tuple(_strict(v) for v in value)
    if isinstance(value, _Object):
        return _Object(tuple((k, _strict(v)) for k, v in value.items))
    return value


def _loose(value: Any) -> Any:
    """`_strict` undone."""
    if isinstance(value, _Bool):
        return value.value
    if isinstance(value, tuple):
        return tuple(_loose(v) for v in value)
    if isinstance(value, _Object):
        return _Object(tuple((k, _loose(v)) for k, v in value.items))
    return value


def _equal_within(actual: Any, expected: Any) -> bool:
    """Two normal forms of lists or mappings, equal. Equal only as Python compares them
    (`[1]` and `[true]`) is a mismatch of kinds inside, unknown as it is at the top level
    (a deny rule `not_equals [true]` must not spare `[1]`); told apart by anything else,
    they differ."""
    if actual != expected:
        return False
    if _strict(actual) != _strict(expected):
        raise Indeterminate("equal only if true is 1 (or false 0) within")
    return True


def _same(actual: Any, expected: Any) -> bool:
    ka, ke = kind_of(actual), kind_of(expected)
    if ka == "null" or ke == "null":
        return ka == ke
    if ka != ke:
        raise Indeterminate(f"cannot compare a {ka} with a {ke}")
    if ka == "list" or ka == "object":
        return _equal_within(_norm(actual), _norm(expected))
    return bool(_norm(actual) == _norm(expected))


# --- prepare helpers -------------------------------------------------------------------


def _any(value: Any) -> Any:
    return _norm(value)


def _list(value: Any) -> dict[str, frozenset[Any]]:
    if not isinstance(value, list | tuple):
        raise ValueError("value must be a list")
    by_kind: dict[str, set[Any]] = {}
    for item in value:
        kind = kind_of(item)
        norm = _norm(item)
        # lists and mappings in their strict forms: a set takes `[1]` and `[true]` for one
        by_kind.setdefault(kind, set()).add(
            _strict(norm) if kind == "list" or kind == "object" else norm
        )
    return {k: frozenset(v) for k, v in by_kind.items()}


def _strings(value: Any) -> tuple[str, ...]:
    items = value if isinstance(value, list | tuple) else [value]
    # a number stands for its text (`starts_with: 75`), as mcp-auth-guard read it
    items = [_number_text(v) for v in items]
    if not items or not all(isinstance(v, str) for v in items):
        raise ValueError("value must be a string or a list of strings")
    return tuple(items)


def _number_text(value: Any) -> Any:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    return value


def _decimal(value: Any) -> Decimal:
    if isinstance(value, bool):
        raise ValueError("a boolean is not a number")
    if isinstance(value, int | Decimal):
        number = Decimal(value)
    elif isinstance(value, float):
        number = Decimal(repr(value))
    elif isinstance(value, str):
        try:
            number = Decimal(value.strip())
        except InvalidOperation:
            raise ValueError("not a number") from None
    else:
        raise ValueError(f"a {kind_of(value)} is not a number")
    if not number.is_finite():
        raise ValueError("nan and infinity are not numbers here")
    return number


def _orderable(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value
    if isinstance(value, str):
        try:
            return _decimal(value)
        except ValueError:
            return value  # ISO dates, times of day: compared as text
    try:
        return _decimal(value)
    except ValueError as exc:
        raise ValueError(f"value must be a number, a string or a date ({exc})") from None


def _bounds(value: Any) -> tuple[Any, Any]:
    if not isinstance(value, list | tuple) or len(value) != 2:
        raise ValueError("value must be a list [low, high]")
    low, high = _orderable(value[0]), _orderable(value[1])
    if kind_of(low) != kind_of(high):
        raise ValueError("low and high must be of the same type")
    if low > high:
        raise ValueError(
            "low must not exceed high (a window that wraps around, such as hours 22 to 6 or"
            " fri to mon, is an `any` group of two conditions: `gte` its start, `lte` its end)"
        )
    return low, high


def _length(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError("value must be a non-negative integer")
    return value


def _regex(value: Any) -> re.Pattern[str]:
    value = _number_text(value)
    if not isinstance(value, str):
        raise ValueError("value must be a regex string")
    try:
        return re.compile(value)
    except re.error as exc:
        raise ValueError(f"invalid regex: {exc}") from None


def _globs(value: Any) -> re.Pattern[str]:
    return re.compile("|".join(f"(?:{translate(p)})" for p in _strings(value)))


def normalise_path(path: str) -> str:
    """Lexical normal form of a path: absolute, no `.`/`..`, no duplicate slashes."""
    if "\x00" in path:
        raise ValueError("path contains a NUL byte")
    if "\\" in path:  # a separator on Windows: `a\..\..` would escape there
        raise ValueError("path contains a backslash")
    normal = posixpath.normpath(posixpath.join("/", path))
    return "/" + normal.lstrip("/")  # normpath keeps a leading `//`; one slash is enough


def _dirs(value: Any) -> tuple[str, ...]:
    dirs = []
    for item in _strings(value):
        if not item.startswith("/"):
            raise ValueError(f"directory {item!r} must be absolute")
        dirs.append(normalise_path(item))
    return tuple(dirs)


def normalise_host(host: str) -> str:
    """Lower-case, trailing-dot-free, IDNA (ASCII) form of a host name."""
    host = host.strip().lower().rstrip(".")
    ip = _canonical_ip(host)
    if ip is not None:
        return ip
    if not host or any(c in host for c in "/\\@%:? #"):
        raise ValueError(f"invalid host {host!r}")
    try:
        return host.encode("idna").decode("ascii")
    except UnicodeError:
        raise ValueError(f"invalid host {host!r}") from None


def _canonical_ip(host: str) -> str | None:
    """The canonical text of an IP literal, in every form resolvers accept (`::ffff:a.b.c.d`
    is IPv4; `2852039166`, `0xa9fea9fe`, `0251.0376.0251.0376` are inet_aton IPv4); None if
    `host` is a name."""
    ip: ipaddress.IPv4Address | ipaddress.IPv6Address
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        if not host or any(c not in "0123456789abcdefx." for c in host):
            return None
        try:
            ip = ipaddress.IPv4Address(socket.inet_aton(host))
        except OSError:
            return None
    return str(_unmapped(ip))


def _unmapped(
    ip: ipaddress.IPv4Address | ipaddress.IPv6Address,
) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    """An IPv4-mapped IPv6 address (`::ffff:a.b.c.d`) is the IPv4 address it maps."""
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


def _hosts(value: Any) -> tuple[frozenset[str], tuple[str, ...]]:
    exact: set[str] = set()
    suffixes: list[str] = []
    for item in _strings(value):
        if item.startswith("*."):
            suffixes.append("." + normalise_host(item[2:]))
        else:
            exact.add(normalise_host(item))
    return frozenset(exact), tuple(suffixes)


Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def _networks(value: Any) -> tuple[Network, ...]:
    nets = []
    for item in _strings(value):
        try:
            nets.append(ipaddress.ip_network(item.strip(), strict=False))
        except ValueError:
            raise ValueError(f"invalid network {item!r}") from None
    return tuple(nets)


# --- tests -------------------------------------------------------------------------------


def _text(actual: Any) -> str:
    if isinstance(actual, str):
        return actual
    if actual is None:  # present, without a value (no agent, no namespace): no text
        return ""
    if isinstance(actual, int) and not isinstance(actual, bool):
        return str(actual)
    raise Indeterminate(f"expected a string, got a {kind_of(actual)}")


def _in(actual: Any, sets: dict[str, frozenset[Any]]) -> bool:
    kind = kind_of(actual)
    bucket = sets.get(kind)
    if bucket is None:
        if kind == "null" or not sets:
            return False
        raise Indeterminate(f"a {kind} cannot be in a list of {', '.join(sorted(sets))}")
    norm = _norm(actual)
    if kind == "list" or kind == "object":  # the list's own are in their `_strict` forms
        if _strict(norm) in bucket:
            return True
        if any(_loose(item) == norm for item in bucket):  # `[1] in [[true]]`
            raise Indeterminate("equal to an item only if true is 1 (or false 0) within")
        return False
    if norm in bucket:
        return True
    other = _LOOSELY_EQUAL.get(kind)
    if other is not None and actual in sets.get(other, ()):
        # `1 in [true, 5]`: mcp-auth-guard (Python's `1 == True`) said yes; unknown here,
        # as other mismatches of kind are
        raise Indeterminate(f"a {kind} is only loosely equal to a {other} of the list")
    return False


# the kinds Python's `==` takes for one another (`1 == True`, `0.0 == False`)
_LOOSELY_EQUAL: Final = {"number": "bool", "bool": "number"}


def _contains(actual: Any, expected: Any) -> bool:
    if actual is None:  # no text, no items: a deny rule aimed at some agents spares none-agents
        if not isinstance(expected, str):  # (mcp-auth-guard raised: unknown, as elsewhere)
            raise Indeterminate(f"cannot look for a {kind_of(expected)} in no value")
        if expected == "":  # which any text holds: unknown, as a glob "*" is (`_affixed`)
            raise Indeterminate("no value to look for the empty text in")
        return False
    if isinstance(actual, str):
        if not isinstance(expected, str):
            raise Indeterminate(f"cannot look for a {kind_of(expected)} in a string")
        return expected in actual
    if isinstance(actual, list | tuple | frozenset | set):
        wanted = kind_of(expected)
        nested = wanted == "list" or wanted == "object"
        loose = False
        for item in actual:
            if kind_of(item) == wanted and (norm := _norm(item)) == expected:
                if not nested or _strict(norm) == _strict(expected):
                    return True
                loose = True  # `[[1]] contains [true]`: equal only as Python compares
        if loose:
            raise Indeterminate("an item is equal only if true is 1 (or false 0) within")
        text = _number_text(expected)
        if isinstance(text, str) and _text_within(actual, text):
            # Not an item, but in one's text, where mcp-auth-guard (comparing the list's
            # text) found it: unknown, so neither reading opens anything. A deny rule
            # `tool.args.sqls contains "DROP"` still fires on ["DROP TABLE t"], and on
            # [{"sql": "DROP TABLE t"}], [["DROP TABLE t"]] (items are searched at any
            # depth, as a mapping is); an allow rule `user.roles contains admin` still
            # does not grant `superadmin`. A number (`contains 22`, which raised there)
            # within an item's text (["22"]) is unknown too.
            raise Indeterminate(f"{expected!r} is within an item's text, not an item")
        return False
    if isinstance(actual, Mapping):
        if isinstance(expected, list | tuple | Mapping):  # keys are text (raised there)
            raise Indeterminate(f"a mapping's keys are never a {kind_of(expected)}")
        if expected in actual:
            return True
        # mcp-auth-guard looked for the text in the mapping's text: a deny rule
        # `tool.args contains "DROP TABLE"` must still fire on {"sql": "DROP TABLE x"}
        if isinstance(expected, str):
            return _text_within(actual, expected)
        text = _number_text(expected)
        if isinstance(text, str) and _text_within(actual, text):
            # a number raised there; its text within a key or value is unknown here
            raise Indeterminate(f"{expected!r} is within the mapping's text, not a key")
        return False
    raise Indeterminate(f"a {kind_of(actual)} contains nothing")


_TEXT_SEARCH_NODES: Final = 10_000  # keys and values looked at in one mapping, at most


def _text_within(value: Any, text: str) -> bool:
    """Whether `text` occurs in a key or a value of a mapping or list, at any depth
    (scalars as their text). One too big to search is unknown (fail closed either way),
    even when the part looked at holds the text: which part that is would depend on the
    order of its keys, which JSON does not keep (nor the record replay decides on)."""
    stack: list[Any] = [value]
    budget = _TEXT_SEARCH_NODES
    found = False
    while stack:
        value = stack.pop()
        budget -= 1
        if budget < 0:
            raise Indeterminate("the mapping is too big to search for text")
        if isinstance(value, str):
            found = found or text in value
        elif isinstance(value, Mapping):
            for key, item in value.items():
                stack.append(key)
                stack.append(item)
        elif isinstance(value, list | tuple | set | frozenset):
            stack.extend(value)
        elif not found and value is not None and text in str(value):
            found = True
    return found


# An integer this far from 0 (more than 3,600 digits: only an in-process caller can send
# one) was converted to a Decimal to be compared with a decimal bound, quadratic in its
# digits (a million digits took 18 s). Beyond every bound of fewer digits, it orders as
# this power of ten of its sign does.
_HUGE: Final = Decimal(HUGE_INT)


def _to_order(actual: Any, expected: Any) -> Any:
    if isinstance(expected, Decimal):
        if isinstance(actual, int) and not LEAST_INT < actual < HUGE_INT:
            if expected.copy_abs() < _HUGE:
                return _HUGE if actual > 0 else -_HUGE
            raise Indeterminate("an integer of more than 3,600 digits against a bound as long")
        kind = type(actual)
        if kind is int or (kind is float and actual - actual == 0):  # finite: exact compare
            return actual
        try:
            return _decimal(actual)
        except ValueError as exc:
            raise Indeterminate(str(exc)) from None
    if kind_of(actual) != kind_of(expected):
        raise Indeterminate(f"cannot order a {kind_of(actual)} against a {kind_of(expected)}")
    return actual


def _path_within(actual: Any, dirs: tuple[str, ...]) -> bool:
    if not isinstance(actual, str):
        raise Indeterminate(f"expected a path string, got a {kind_of(actual)}")
    try:
        path = normalise_path(actual)
    except ValueError as exc:
        raise Indeterminate(str(exc)) from None
    return any(path == d or path.startswith(d if d == "/" else d + "/") for d in dirs)


_UNSAFE_IN_URL: Final = re.compile(r"[\x00-\x20\\]")  # controls, space, backslash: in C


def url_host(url: str) -> str:
    """The host a URL really names (userinfo tricks and backslashes refused)."""
    if _UNSAFE_IN_URL.search(url):
        raise ValueError("URL contains characters browsers and parsers disagree on")
    parts = urlsplit(url.strip())
    host = parts.hostname
    if not parts.scheme or not host:
        raise ValueError("not an absolute URL with a host")
    parts.port  # noqa: B018 - raises ValueError on a malformed port
    return normalise_host(host)


def _url_host(actual: Any, hosts: tuple[frozenset[str], tuple[str, ...]]) -> bool:
    if not isinstance(actual, str):
        raise Indeterminate(f"expected a URL string, got a {kind_of(actual)}")
    try:
        host = url_host(actual)
    except ValueError:
        raise Indeterminate("not a URL with a valid host") from None  # never echo the URL
    exact, suffixes = hosts
    return host in exact or any(host.endswith(s) for s in suffixes)


def _cidr(actual: Any, nets: tuple[Network, ...]) -> bool:
    if not isinstance(actual, str | ipaddress.IPv4Address | ipaddress.IPv6Address):
        raise Indeterminate(f"expected an IP address, got a {kind_of(actual)}")
    try:
        ip = ipaddress.ip_address(actual.strip() if isinstance(actual, str) else actual)
    except ValueError:
        raise Indeterminate("not an IP address") from None
    ip = _unmapped(ip)
    return any(ip.version == n.version and ip in n for n in nets)


def _len(actual: Any) -> int:
    if isinstance(actual, str | list | tuple | Mapping | frozenset | set):
        return len(actual)
    raise Indeterminate(f"a {kind_of(actual)} has no length")


def _as_json(value: Any) -> Any:
    """A read-only mapping (the request context, a tool's meta, kept claims) is the JSON
    object it holds, as its record gives it back to replay; nothing else is JSON."""
    if isinstance(value, Mapping):
        return dict(value)
    raise TypeError(f"a {kind_of(value)} is not JSON")


def _size(actual: Any) -> int:
    try:
        text = json.dumps(
            actual, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
            allow_nan=False, default=_as_json,
        )  # fmt: skip
    except (TypeError, ValueError) as exc:
        raise Indeterminate(f"value is not JSON: {exc}") from None
    return len(text.encode())


MAX_REGEX_TEXT: Final = 4096  # characters a `regex` condition runs on, at most


def _pattern_text(actual: Any) -> str:
    """The text a `regex` runs on. Longer than `MAX_REGEX_TEXT`, it is unknown (fail
    closed): even a regex with two overlapping repeats (`.*a.*b`), which the load-time
    check allows, backtracks O(n**2) on a long failing argument."""
    text = _text(actual)
    if len(text) > MAX_REGEX_TEXT:
        raise Indeterminate(f"a regex runs on at most {MAX_REGEX_TEXT} characters")
    return text


def _matches(actual: Any, pattern: re.Pattern[str]) -> bool:
    if actual is None:
        # No value, no text. A pattern the empty text (or mcp-auth-guard's text for it,
        # `None`) would satisfy is unknown: an allow rule `regex "[a-z]*"` must not admit
        # a null argument, and a deny rule `regex ".*"` still fires, as it did there.
        if pattern.fullmatch("") is not None or pattern.fullmatch("None") is not None:
            raise Indeterminate("no value to match the pattern against")
        return False
    return pattern.fullmatch(_pattern_text(actual)) is not None


def _globbed(actual: Any, pattern: re.Pattern[str]) -> bool:
    if actual is None:
        # No value, no text, as for `regex`: a glob the empty text satisfies (`*`) is
        # unknown, so an allow rule `user.agent_id glob "*"` ("any agent") does not admit a
        # caller without one, and a deny rule with it still fires.
        if pattern.fullmatch("") is not None:
            raise Indeterminate("no value to match the glob against")
        return False
    return pattern.fullmatch(_text(actual)) is not None


def _affixed(actual: Any, affixes: tuple[str, ...]) -> bool:
    """No value, no text, as for `glob`: the empty text, which any text starts and ends
    with, is unknown there, so an allow rule `user.agent_id starts_with ""` ("any agent")
    does not admit a caller without one, and a deny rule with it still fires."""
    if "" in affixes:
        raise Indeterminate("no value to match the empty text against")
    return False


def _starts(actual: Any, prefixes: tuple[str, ...]) -> bool:
    if actual is None:
        return _affixed(actual, prefixes)
    return _text(actual).startswith(prefixes)


def _ends(actual: Any, suffixes: tuple[str, ...]) -> bool:
    if actual is None:
        return _affixed(actual, suffixes)
    return _text(actual).endswith(suffixes)


def _between(actual: Any, bounds: tuple[Any, Any]) -> bool:
    low, high = bounds
    value = _to_order(actual, low)
    return bool(low <= value <= high)


class Operator:
    """One operator: `prepare(value)` at load, `test(actual, prepared) -> bool` per decision."""

    __slots__ = ("name", "prepare", "test")

    def __init__(
        self, name: str, prepare: Callable[[Any], Any], test: Callable[[Any, Any], bool]
    ) -> None:
        self.name = name
        self.prepare = prepare
        self.test = test


def _op(name: str, prepare: Callable[[Any], Any], test: Callable[[Any, Any], bool]) -> Operator:
    return Operator(name, prepare, test)


OPERATORS_TABLE: Final[dict[str, Operator]] = {
    op.name: op
    for op in (
        _op("equals", _any, _same),
        _op("not_equals", _any, lambda a, e: not _same(a, e)),
        _op("in", _list, _in),
        _op("not_in", _list, lambda a, e: not _in(a, e)),
        _op("contains", _any, _contains),
        _op("not_contains", _any, lambda a, e: not _contains(a, e)),
        _op("starts_with", _strings, _starts),
        _op("ends_with", _strings, _ends),
        _op("regex", _regex, _matches),
        _op("glob", _globs, _globbed),
        _op("gt", _orderable, lambda a, e: _to_order(a, e) > e),
        _op("lt", _orderable, lambda a, e: _to_order(a, e) < e),
        _op("gte", _orderable, lambda a, e: _to_order(a, e) >= e),
        _op("lte", _orderable, lambda a, e: _to_order(a, e) <= e),
        _op("between", _bounds, _between),
        _op("path_within", _dirs, _path_within),
        _op("url_host", _hosts, _url_host),
        _op("cidr", _networks, _cidr),
        _op("len_lte", _length, lambda a, e: _len(a) <= e),
        _op("len_gte", _length, lambda a, e: _len(a) >= e),
        _op("size_lte", _length, lambda a, e: _size(a) <= e),
        # `exists` / `not_exists` never reach `test`: the condition checks presence itself.
        _op("exists", _any, lambda a, e: True),
        _op("not_exists", _any, lambda a, e: False),
    )
}

OPERATORS: Final = frozenset(OPERATORS_TABLE)
