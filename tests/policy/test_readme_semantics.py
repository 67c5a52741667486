"""Differential test: `load_policies(...).decide` against a reference read off README.md.

The reference below is written from the README's words alone ("Policies: the language",
"Several policies together", the operator table and the differences from mcp-auth-guard),
not from the code: it takes the policy documents as plain dicts (what YAML gives), walks
every rule in the documented order, and evaluates each condition in three values. It is
slow and small on purpose. Unlike `reference.py` (which the index property test uses), it
covers every operator, nested fields, list indexes, several policies with ties in priority,
empty matchers and the whole `Decision` (`allowed`, `reason`, `rule`, `policy`,
`matched_rules`).

A long local run: `GUARD_PROPERTY_EXAMPLES=200000 python3 -m pytest
tests/policy/test_readme_semantics.py`.
"""

from __future__ import annotations

import ipaddress
import json
import os
import posixpath
import re
from datetime import UTC, datetime
from fnmatch import fnmatchcase
from typing import Any
from urllib.parse import urlsplit

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from guard import AccessRequest, PolicySet, Principal, Resource, load_policies

EXAMPLES = max(int(os.environ.get("GUARD_PROPERTY_EXAMPLES", "10000")) // 10, 200)

# --- the reference -----------------------------------------------------------------------

ABSENT = object()  # a field the request does not have
UNKNOWN = None  # a condition that cannot be evaluated (three-valued logic: True/False/None)


def kind(v: Any) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, int | float):
        return "number"
    if isinstance(v, str):
        return "string"
    if isinstance(v, list | tuple):
        return "list"
    if isinstance(v, dict):
        return "object"
    raise AssertionError(v)


def given_list(value: Any) -> list[Any] | None:
    """A matcher key's values; `[]`, `""` and an absent key are "not given"."""
    if value is None or value in ([], ""):
        return None
    return [value] if isinstance(value, str) else list(value)


def globs(text: str, patterns: list[str]) -> bool:
    return any(fnmatchcase(text, p) for p in patterns)


def scheme(uri: str) -> str:
    """README: the text before the first `:` when that is a scheme (RFC 3986), else the
    text before `://`, else none."""
    head = uri.split(":", 1)[0]
    if ":" in uri and re.fullmatch(r"[A-Za-z][A-Za-z0-9+.-]*", head):
        return head
    return uri.split("://", 1)[0] if "://" in uri else ""


def names_ok(m: dict[str, Any], name: str, tags: frozenset[str]) -> bool:
    names, patterns, want = (given_list(m.get(k)) for k in ("names", "patterns", "tags"))
    if names is not None and name not in names:
        return False
    if patterns is not None and not globs(name, patterns):
        return False
    return want is None or bool(set(want) & tags)


def tools_ok(m: dict[str, Any], r: Resource) -> bool:
    namespaces = given_list(m.get("namespaces"))
    if namespaces is not None and r.namespace not in namespaces:
        return False
    return names_ok(m, r.name, r.tags)


def resources_ok(m: dict[str, Any], r: Resource) -> bool:
    uri = r.uri if r.uri is not None else r.name  # "matched on its URI (the name if it has none)"
    uris, patterns = given_list(m.get("uris")), given_list(m.get("patterns"))
    schemes, want = given_list(m.get("schemes")), given_list(m.get("tags"))
    if uris is not None and uri not in uris:
        return False
    if patterns is not None and not globs(uri, patterns):
        return False
    if schemes is not None and scheme(uri) not in schemes:
        return False
    return want is None or bool(set(want) & r.tags)


def templates_ok(m: dict[str, Any], r: Resource, template: str) -> bool:
    uri_templates, patterns = given_list(m.get("uri_templates")), given_list(m.get("patterns"))
    names, want = given_list(m.get("names")), given_list(m.get("tags"))
    if uri_templates is not None and template not in uri_templates:
        return False
    if patterns is not None and not globs(template, patterns):
        return False
    if names is not None and r.name not in names:
        return False
    return want is None or bool(set(want) & r.tags)


def component_ok(rule: dict[str, Any], r: Resource) -> bool:
    """The rule's matcher for the request's kind; a `tools` matcher alone also applies, by
    name, to other kinds; a rule without component matchers applies to every kind."""
    tools, res = rule.get("tools"), rule.get("resources")
    tpl, prompts = rule.get("resource_templates"), rule.get("prompts")
    own: list[bool] = []
    if r.kind == "tool" and tools is not None:
        own.append(tools_ok(tools, r))
    if r.kind == "resource" and res is not None:
        own.append(resources_ok(res, r))
    if r.kind == "resource" and r.template is not None and tpl is not None:
        own.append(templates_ok(tpl, r, r.template))
    if r.kind == "resource_template" and tpl is not None:
        own.append(templates_ok(tpl, r, r.uri if r.uri is not None else r.name))
    if r.kind == "prompt" and prompts is not None:
        own.append(names_ok(prompts, r.name, r.tags))
    if own:
        return any(own)
    if tools is not None:
        return tools_ok(tools, r)
    return tools is None and res is None and tpl is None and prompts is None


def agents_ok(a: dict[str, Any], p: Principal) -> bool:
    users, roles = given_list(a.get("user_id")), given_list(a.get("roles"))
    agent_ids, patterns = given_list(a.get("agent_id")), given_list(a.get("patterns"))
    if users is not None and not globs(p.user_id or "", users):
        return False
    if roles is not None:
        if "*" in roles:
            if not p.roles:
                return False
        elif not set(roles) & set(p.roles):
            return False
    if agent_ids is not None and not globs(p.agent_id or "", agent_ids):
        return False
    return patterns is None or globs(p.user_id or "", patterns) or globs(p.agent_id or "", patterns)


def walk(value: Any, keys: list[str]) -> Any:
    for key in keys:
        if isinstance(value, dict):
            if key not in value:
                return ABSENT
            value = value[key]
        elif isinstance(value, list | tuple) and key.isdigit() and int(key) < len(value):
            value = value[int(key)]
        else:
            return ABSENT
    return value


def field(name: str, q: AccessRequest) -> tuple[Any, bool]:
    """The field's value, and whether it is an attribute (present only with a value)."""
    p, r = q.principal, q.resource
    assert q.time is not None
    clock = q.time.astimezone(UTC)
    method_type = (q.method or "").split("/")[0] or {"tool": "tools", "prompt": "prompts"}.get(
        r.kind, "resources"
    )
    attributes = {
        "user.id": p.user_id,
        "user.roles": p.roles,
        "user.agent_id": p.agent_id,
        "user.authenticated": p.authenticated,
        "principal.user_id": p.user_id,
        "tool.name": r.name,
        "tool.namespace": r.namespace,
        "tool.version": r.version,
        "tool.tags": tuple(sorted(r.tags)),
        "resource.kind": r.kind,
        "resource.name": r.name,
        "resource.uri": r.uri,
        "resource.template": r.template,
        "resource.tags": tuple(sorted(r.tags)),
        "request.action": q.action,
        "request.method": q.method,
        "request.resource_type": method_type,
        "request.timestamp": clock.timestamp(),
        "request.time.hour": clock.hour,
        "request.time.weekday": clock.weekday(),
        "request.time.date": clock.date().isoformat(),
    }
    if name in attributes:
        return attributes[name], True
    if name == "tool.args":
        return dict(q.args), False
    for prefix, mapping in (
        ("user.claims.", p.claims),
        ("tool.args.", q.args),
        ("request.args.", q.args),
        ("tool.metadata.", r.meta),
        ("request.context.", q.context),
    ):
        if name.startswith(prefix):
            return walk(mapping, name[len(prefix) :].split(".")), prefix == "request.context."
    raise AssertionError(f"field {name} is not generated")


def same(a: Any, b: Any) -> bool | None:
    """Typed equality: a mismatch of types is unknown (`true` is not `1`), except `null`."""
    if a is None or b is None:
        return a is None and b is None
    if kind(a) != kind(b):
        return UNKNOWN
    if kind(a) == "list":
        if len(a) != len(b):
            return False
        return all3([same(x, y) for x, y in zip(a, b, strict=True)])
    if kind(a) == "object":
        if set(a) != set(b):
            return False
        return all3([same(a[k], b[k]) for k in a])
    return bool(a == b)


def text_of(a: Any) -> str | None:
    """The text string operators see: a string, an integer's digits, none for `null`."""
    if isinstance(a, str):
        return a
    if isinstance(a, int) and not isinstance(a, bool):
        return str(a)
    return None


def occurs(text: str, value: Any) -> bool:
    """`text` within a key or a value of a mapping or list, at any depth (not in `null`)."""
    if isinstance(value, dict):
        return any(occurs(text, k) or occurs(text, v) for k, v in value.items())
    if isinstance(value, list | tuple):
        return any(occurs(text, v) for v in value)
    return value is not None and text in str(value)


def contains(a: Any, e: Any) -> bool | None:
    if a is None:
        # "no value": false, unless the empty text is looked for (unknown, as a glob "*")
        return False if isinstance(e, str) and e else UNKNOWN
    if isinstance(a, str):
        return e in a if isinstance(e, str) else UNKNOWN
    if isinstance(a, tuple | list):
        if any(same(item, e) is True for item in a):
            return True
        text = str(e) if kind(e) == "number" else e
        if isinstance(text, str) and any(occurs(text, item) for item in a):
            return UNKNOWN  # within an item's text, but no item is it
        return False
    if isinstance(a, dict):
        if isinstance(e, list | tuple | dict):
            return UNKNOWN
        if isinstance(e, str):
            return e in a or occurs(e, a)
        if kind(e) == "number" and occurs(str(e), a):
            return UNKNOWN
        return False
    return UNKNOWN


def number(v: Any) -> float | None:
    if kind(v) == "number":
        return float(v)
    if isinstance(v, str):
        try:
            n = float(v.strip())
        except ValueError:
            return None
        return n if n - n == 0 else None
    return None


def order(a: Any, e: Any) -> tuple[Any, Any] | None:
    """Both sides as comparable values: numbers (strings that are numbers count), or two
    texts; anything else is a mismatch (unknown)."""
    if number(e) is not None:
        n = number(a)
        return None if n is None else (n, number(e))
    if isinstance(a, str) and isinstance(e, str):
        return a, e
    return None


def length(a: Any) -> int | None:
    return len(a) if isinstance(a, str | list | tuple | dict) else None


def path_ok(a: Any, dirs: list[str]) -> bool | None:
    if not isinstance(a, str) or "\x00" in a or "\\" in a:
        return UNKNOWN
    path = "/" + posixpath.normpath("/" + a).lstrip("/")
    return any(path == d or path.startswith(d.rstrip("/") + "/") for d in dirs)


def host_ok(a: Any, hosts: list[str]) -> bool | None:
    if not isinstance(a, str) or re.search(r"[\x00-\x20\\]", a):
        return UNKNOWN
    try:
        host = urlsplit(a).hostname
        urlsplit(a).port  # noqa: B018 - a bad port is not a URL
    except ValueError:
        return UNKNOWN
    if not urlsplit(a).scheme or not host:
        return UNKNOWN
    host = host.rstrip(".")
    return any(host == h or (h.startswith("*.") and host.endswith(h[1:])) for h in hosts)


def cidr_ok(a: Any, nets: list[str]) -> bool | None:
    if not isinstance(a, str):  # an address is text (`true` would be 0.0.0.1 to ipaddress)
        return UNKNOWN
    try:
        ip = ipaddress.ip_address(a)
    except ValueError:
        return UNKNOWN
    return any(ip in ipaddress.ip_network(n) for n in nets)


def apply(op: str, a: Any, e: Any) -> bool | None:
    if op == "equals":
        return same(a, e)
    if op == "in":
        if a is None:
            return any(x is None for x in e)
        alike = [x for x in e if kind(x) == kind(a)]
        if any(same(a, x) is True for x in alike):
            return True
        if any(x == a and {kind(a), kind(x)} == {"bool", "number"} for x in e):
            return UNKNOWN  # `true` is not `1`, nor is it clearly not
        # a list holding no value of the field's type cannot say (nor can a list field)
        return False if alike or not e else UNKNOWN
    if op == "contains":
        return contains(a, e)
    if op == "glob" and a is None:  # as `regex`: a glob "no value" would satisfy is unknown
        return UNKNOWN if globs("", e if isinstance(e, list) else [e]) else False
    if op in ("starts_with", "ends_with") and a is None:  # the same: `""` is unknown there
        return UNKNOWN if "" in [str(x) for x in (e if isinstance(e, list) else [e])] else False
    if op in ("starts_with", "ends_with", "glob"):
        text = "" if a is None else text_of(a)
        if text is None:
            return UNKNOWN
        items = [str(x) for x in (e if isinstance(e, list) else [e])]
        if op == "glob":
            return globs(text, items)
        return any(text.startswith(x) if op == "starts_with" else text.endswith(x) for x in items)
    if op == "regex":
        pattern = str(e)
        if a is None:
            empty = re.fullmatch(pattern, "") or re.fullmatch(pattern, "None")
            return UNKNOWN if empty else False
        text = text_of(a)
        if text is None or len(text) > 4096:
            return UNKNOWN
        return re.fullmatch(pattern, text) is not None
    if op in ("gt", "lt", "gte", "lte"):
        pair = order(a, e)
        if pair is None:
            return UNKNOWN
        x, y = pair
        return {"gt": x > y, "lt": x < y, "gte": x >= y, "lte": x <= y}[op]
    if op == "between":
        low, high = order(a, e[0]), order(a, e[1])
        if low is None or high is None:
            return UNKNOWN
        return low[1] <= low[0] <= high[1]
    if op == "path_within":
        return path_ok(a, e if isinstance(e, list) else [e])
    if op == "url_host":
        return host_ok(a, e if isinstance(e, list) else [e])
    if op == "cidr":
        return cidr_ok(a, e if isinstance(e, list) else [e])
    if op in ("len_lte", "len_gte"):
        n = length(a)
        if n is None:
            return UNKNOWN
        return n <= e if op == "len_lte" else n >= e
    if op == "size_lte":
        return size_bytes(a) <= e
    raise AssertionError(op)


def size_bytes(a: Any) -> int:
    return len(json.dumps(a, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode())


NEGATIONS = {"not_equals": "equals", "not_in": "in", "not_contains": "contains"}


def condition(c: dict[str, Any], q: AccessRequest) -> bool | None:
    if "all" in c:
        return all3([condition(x, q) for x in c["all"]])
    if "any" in c:
        return any3([condition(x, q) for x in c["any"]])
    if "not" in c:
        inner = condition(c["not"], q)
        return None if inner is None else not inner
    value, attribute = field(c["field"], q)
    op = c["operator"]
    if op in ("exists", "not_exists"):
        present = value is not ABSENT and not (attribute and value is None)
        return present if op == "exists" else not present
    if value is ABSENT:
        return UNKNOWN
    expected = c["value"]
    if c["field"] in ("tool.tags", "resource.tags"):  # tags are a set: lists of tags too
        value = sorted(value)
        if op in ("equals", "not_equals"):
            expected = tag_set(expected)
        if op in ("in", "not_in"):
            expected = [tag_set(x) for x in expected]
    if c["field"] == "request.time.weekday":  # `mon`...`sun`, alone or in a list (`in`)
        expected = weekday_index(expected)
    if isinstance(value, tuple):
        value = list(value)
    result = apply(NEGATIONS.get(op, op), value, expected)
    if op in NEGATIONS and result is not None:
        return not result
    return result


WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def weekday_index(value: Any) -> Any:
    """A weekday's name as `datetime.weekday()` numbers it; a list of names, each."""
    if isinstance(value, str) and value in WEEKDAYS:
        return WEEKDAYS.index(value)
    if isinstance(value, list):
        return [weekday_index(v) for v in value]
    return value


def tag_set(value: Any) -> Any:
    """A list of tags written in a condition is a set of tags."""
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return sorted(set(value))
    return value


def all3(values: list[bool | None]) -> bool | None:
    return False if False in values else None if None in values else True


def any3(values: list[bool | None]) -> bool | None:
    return True if True in values else None if None in values else False


def rule_matches(rule: dict[str, Any], q: AccessRequest) -> bool:
    if not globs(q.action, rule.get("actions", ["*"])):
        return False
    if rule.get("agents") is not None and not agents_ok(rule["agents"], q.principal):
        return False
    if not component_ok(rule, q.resource):
        return False
    result = all3([condition(c, q) for c in rule.get("conditions", [])])
    if result is None:  # unknown: an allow rule does not match, a deny rule does
        return rule["effect"] == "deny"
    return result


def reference(docs: list[dict[str, Any]], q: AccessRequest) -> dict[str, Any]:
    def decision(allowed: bool, reason: str, rule: Any = None, policy: Any = None,
                 matched: tuple[str, ...] = ()) -> dict[str, Any]:  # fmt: skip
        return {"allowed": allowed, "reason": reason, "rule": rule, "policy": policy,
                "matched_rules": matched}  # fmt: skip

    if not q.principal.authenticated:
        return decision(False, "unauthenticated")
    if not docs:
        return decision(False, "no_policy")
    combining = next((d["combining"] for d in docs if "combining" in d), "first_match")
    ordered = sorted(
        ((-int(rule.get("priority", 100)), p, r, rule, doc)
         for p, doc in enumerate(docs) for r, rule in enumerate(doc["rules"])),
        key=lambda t: t[:3],
    )  # fmt: skip
    matched = [(rule, doc) for *_, rule, doc in ordered if rule_matches(rule, q)]
    labels = tuple(f"{doc['name']}/{rule['name']}" for rule, doc in matched)
    if matched:
        if combining == "first_match":
            rule, doc = matched[0]
            return decision(rule["effect"] == "allow", "rule", rule["name"], doc["name"],
                            labels[:1])  # fmt: skip
        deny = [(rule, doc) for rule, doc in matched if rule["effect"] == "deny"]
        rule, doc = (deny or matched)[0]
        return decision(rule["effect"] == "allow", "rule", rule["name"], doc["name"], labels)
    denying = [d for d in docs if d.get("default_effect", "deny").lower() != "allow"]
    if denying:  # the first policy whose default denies is the one that decided
        return decision(False, "default", None, denying[0]["name"])
    return decision(True, "default", None, docs[0]["name"] if len(docs) == 1 else None)


# --- generated policies and requests ------------------------------------------------------

NAMES = ["get_x", "set_x", "bar", "svc-1", ""]
URIS = ["data://a", "db://m/ro", "urn:acme:pay", "my_app://x", "config", "users://{id}"]
TAGS = ["safe", "fs", "net"]
ROLES = ["admin", "user", "superadmin"]
WORDS = ["admin", "alice", "7", "10", "2.5", "", "DROP TABLE t", "/srv/a/../b", "None"]
SCALARS = st.one_of(
    st.sampled_from(WORDS),
    st.sampled_from([0, 1, 7, 10, -3, 2.5, 1.0, True, False, None]),
)
JSON = st.recursive(
    SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.dictionaries(st.sampled_from(["a", "b", "admin", "0"]), inner, max_size=3),
    ),
    max_leaves=6,
)
ARGS_FIELDS = ["tool.args.a", "tool.args.b", "tool.args.a.b", "tool.args.a.0", "request.args.a",
               "tool.args.admin"]  # fmt: skip
FIELDS = [
    *ARGS_FIELDS,
    "tool.args",
    "user.id",
    "user.roles",
    "user.agent_id",
    "user.authenticated",
    "user.claims.level",
    "principal.user_id",
    "tool.name",
    "tool.namespace",
    "tool.version",
    "tool.tags",
    "tool.metadata.m",
    "resource.kind",
    "resource.uri",
    "resource.template",
    "resource.tags",
    "request.action",
    "request.method",
    "request.resource_type",
    "request.context.transport",
    "request.context.session_id",
    "request.time.hour",
    "request.time.weekday",
    "request.time.date",
]


NULLABLE = ["user.agent_id", "tool.namespace", "resource.template", "tool.args.a", "user.id",
            "request.context.session_id"]  # fmt: skip


@st.composite
def leaf(draw: st.DrawFn) -> dict[str, Any]:
    # fields that may be present without a value (`null`, no agent) half the time
    name = draw(st.sampled_from(FIELDS) | st.sampled_from(NULLABLE))
    op = draw(
        st.sampled_from(
            [
                "equals",
                "not_equals",
                "in",
                "not_in",
                "contains",
                "not_contains",
                "starts_with",
                "ends_with",
                "regex",
                "glob",
                "gt",
                "lt",
                "gte",
                "lte",
                "between",
                "path_within",
                "url_host",
                "cidr",
                "len_lte",
                "len_gte",
                "size_lte",
                "exists",
                "not_exists",
            ]
        )
    )
    if op in ("exists", "not_exists"):
        return {"field": name, "operator": op}
    if name == "request.time.weekday":
        if op not in ("equals", "not_equals", "in", "not_in"):
            return {"field": name, "operator": "exists"}
        day = st.sampled_from(["mon", "sat"])
        value = draw(st.lists(day, min_size=1, max_size=2) if "in" in op else day)
        return {"field": name, "operator": op, "value": value}
    if name == "request.time.hour" and op in ("equals", "not_equals", "in", "not_in"):
        hour = st.sampled_from([9, 23, 0, "9"])
        value = draw(st.lists(hour, max_size=2) if "in" in op else hour)
        return {"field": name, "operator": op, "value": value}
    if name == "request.time.date":
        op = draw(st.sampled_from(["equals", "gt", "lte", "starts_with", "between"]))
        if op == "between":
            return {"field": name, "operator": op, "value": ["2025-01-01", "2025-06-30"]}
        day = st.sampled_from(["2025-03-04", "2025"] if op == "starts_with" else ["2025-03-04"])
        return {"field": name, "operator": op, "value": draw(day)}
    values: dict[str, Any] = {
        "in": st.lists(SCALARS | st.lists(st.sampled_from(TAGS), max_size=2), max_size=3),
        "starts_with": st.sampled_from(["ad", "", "/srv", "7", ["a", "s"], 1]),
        "ends_with": st.sampled_from(["min", "x", ["in", "1"], 0]),
        "regex": st.sampled_from(["adm.*", "[a-z]+", ".*", "7|10", "a?", 7]),
        "glob": st.sampled_from(["*", "adm*", "?", "[0-9]*", ["s*", "*x"]]),
        "gt": st.sampled_from([5, "5", 2.5, "admin", "10"]),
        "between": st.sampled_from([[1, 8], ["1", "10"], ["a", "m"]]),
        "path_within": st.sampled_from(["/srv", ["/srv/b", "/tmp"], "/"]),
        "url_host": st.sampled_from(["example.com", "*.example.com"]),
        "cidr": st.sampled_from(["10.0.0.0/8", ["127.0.0.1/32", "::1/128"]]),
        "len_lte": st.sampled_from([0, 1, 3]),
        "size_lte": st.sampled_from([2, 5, 20]),
    }
    for alias, same_as in (("not_in", "in"), ("lt", "gt"), ("gte", "gt"), ("lte", "gt"),
                           ("len_gte", "len_lte")):  # fmt: skip
        values[alias] = values[same_as]
    strategy = values.get(op, JSON)
    if op == "equals" and name in ("tool.tags", "resource.tags"):
        strategy = st.lists(st.sampled_from(TAGS), max_size=3)
    return {"field": name, "operator": op, "value": draw(strategy)}


CONDITIONS = st.recursive(
    leaf(),
    lambda inner: st.one_of(
        st.builds(lambda xs: {"all": xs}, st.lists(inner, min_size=1, max_size=3)),
        st.builds(lambda xs: {"any": xs}, st.lists(inner, min_size=1, max_size=3)),
        st.builds(lambda x: {"not": x}, inner),
    ),
    max_leaves=4,
)


def optional(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.none() | strategy | st.just([])


def maybe_keys(**strategies: st.SearchStrategy[Any]) -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries({}, optional={k: optional(s) for k, s in strategies.items()})


def some(values: list[str]) -> st.SearchStrategy[list[str]]:
    return st.lists(st.sampled_from(values), min_size=1, max_size=2)


NAME_GLOBS = some(["get_*", "*_x", "[gs]et_x", "*", "ba?", "svc-1"])
URI_GLOBS = some(["*://*", "db://*/ro", "urn:*", "*"])
RULE_PARTS = {
    "agents": maybe_keys(
        user_id=st.sampled_from(["alice", "a*", "*", ""]) | some(["alice", "bob", "*"]),
        roles=some([*ROLES, "*"]),
        agent_id=st.sampled_from(["bot", "*", ""]) | some(["bot", "b*"]),
        patterns=some(["svc-*", "b*"]),
    ),
    "tools": maybe_keys(
        names=some(NAMES), patterns=NAME_GLOBS, namespaces=some(["fs", "net"]), tags=some(TAGS)
    ),
    "resources": maybe_keys(
        uris=some(URIS),
        patterns=URI_GLOBS,
        schemes=some(["db", "urn", "my_app", "data"]),
        tags=some(TAGS),
    ),
    "resource_templates": maybe_keys(
        uri_templates=some(["users://{id}", "db://{n}"]),
        names=some(NAMES),
        patterns=URI_GLOBS,
        tags=some(TAGS),
    ),
    "prompts": maybe_keys(names=some(NAMES), patterns=NAME_GLOBS, tags=some(TAGS)),
    "actions": st.lists(
        st.sampled_from(["*", "call", "read", "get", "list", "c*", "?et"]), min_size=1, max_size=2
    ),
    "conditions": st.lists(CONDITIONS, max_size=2),
    "priority": st.sampled_from([50, 100, 200, "100", 100.0]),
}


@st.composite
def a_rule(draw: st.DrawFn, index: int) -> dict[str, Any]:
    rule: dict[str, Any] = {"name": f"r{index}", "effect": draw(st.sampled_from(["allow", "deny"]))}
    for key, strategy in RULE_PARTS.items():
        if draw(st.integers(0, 3)) == 0:
            rule[key] = draw(strategy)
    return rule


@st.composite
def policies(draw: st.DrawFn) -> list[dict[str, Any]]:
    combining = draw(st.sampled_from(["first_match", "deny_overrides"]))
    docs = []
    for p in range(draw(st.sampled_from([1, 2, 3, 1, 2, 0]))):
        doc: dict[str, Any] = {"name": f"p{p}", "rules": []}
        for i in range(draw(st.integers(0, 5))):
            doc["rules"].append(draw(a_rule(i)))
        if draw(st.booleans()):
            doc["default_effect"] = draw(st.sampled_from(["allow", "deny", "Allow", "DENY"]))
        if draw(st.booleans()):
            doc["combining"] = combining
        docs.append(doc)
    return docs


@st.composite
def requests(draw: st.DrawFn) -> AccessRequest:
    kind_ = draw(st.sampled_from(["tool", "resource", "resource_template", "prompt"]))
    principal = Principal(
        user_id=draw(st.sampled_from(["alice", "bob", "svc-1", "", None])),
        roles=tuple(draw(st.lists(st.sampled_from(ROLES), max_size=2, unique=True))),
        agent_id=draw(st.sampled_from([None, "bot", "bx", ""])),
        claims=draw(st.dictionaries(st.just("level"), SCALARS, max_size=1)),
        authenticated=draw(st.sampled_from([True] * 9 + [False])),
    )
    resource = Resource(
        kind=kind_,
        name=draw(st.sampled_from(NAMES)),
        tags=frozenset(draw(st.lists(st.sampled_from(TAGS), max_size=2))),
        namespace=draw(st.sampled_from([None, "fs", "net"])),
        version=draw(st.sampled_from([None, "1.2"])),
        uri=draw(st.sampled_from([None, *URIS])),
        template=draw(st.sampled_from([None, "users://{id}", "db://{n}"]))
        if kind_ == "resource"
        else None,
        meta=draw(st.dictionaries(st.just("m"), SCALARS, max_size=1)),
    )
    arg = (
        SCALARS
        | JSON
        | st.sampled_from(
            [
                "http://example.com/x",
                "http://a.example.com",
                "http://x@evil.com",
                "10.1.2.3",
                "::1",
                "/srv/b/c",
                "/srv/../etc",
                "x" * 4097,
            ]
        )
    )
    args = draw(st.dictionaries(st.sampled_from(["a", "b", "admin"]), arg, max_size=2))
    time = draw(st.sampled_from([datetime(2025, 3, 4, 9, 30, tzinfo=UTC),
                                 datetime(2025, 3, 8, 23, 5, tzinfo=UTC)]))  # fmt: skip
    method = draw(st.sampled_from([None, "tools/call", "resources/read", "prompts/get"]))
    context = draw(st.sampled_from([{}, {"transport": "http", "session_id": None},
                                    {"transport": "stdio", "session_id": "s1"}]))  # fmt: skip
    action = draw(st.sampled_from(["call", "read", "get", "list", "execute"]))
    return AccessRequest(principal, resource, action, args, time, method, context)


def ours(ps: PolicySet, q: AccessRequest) -> dict[str, Any]:
    d = ps.decide(q)
    return {"allowed": d.allowed, "reason": d.reason, "rule": d.rule, "policy": d.policy,
            "matched_rules": d.matched_rules}  # fmt: skip


@settings(max_examples=EXAMPLES, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])  # fmt: skip
@given(docs=policies(), qs=st.lists(requests(), min_size=1, max_size=4))
def test_decide_agrees_with_the_readme(docs: list[dict[str, Any]], qs: list[AccessRequest]) -> None:
    ps = load_policies(docs) if docs else PolicySet.empty()
    for q in qs:
        assert ours(ps, q) == reference(docs, q), (docs, q)


def test_the_reference_is_not_vacuous() -> None:
    """Ties in priority go by policy order; `deny_overrides` names the first matching deny
    and lists every match; the reference says so, and so does the code."""
    docs: list[dict[str, Any]] = [
        {"name": "a", "rules": [{"name": "ok", "effect": "allow"}]},
        {"name": "b", "combining": "deny_overrides", "default_effect": "allow",
         "rules": [{"name": "no", "effect": "deny", "conditions": [
             {"field": "user.agent_id", "operator": "glob", "value": "*"}]}]},
    ]  # fmt: skip
    q = AccessRequest(Principal("alice"), Resource("tool", "t"), "call", time=datetime.now(UTC))
    expected = {"allowed": False, "reason": "rule", "rule": "no", "policy": "b",
                "matched_rules": ("a/ok", "b/no")}  # fmt: skip
    assert reference(docs, q) == expected == ours(load_policies(docs), q)
    docs[1]["combining"] = docs[0]["combining"] = "first_match"
    assert reference(docs, q)["rule"] == "ok" == ours(load_policies(docs), q)["rule"]
