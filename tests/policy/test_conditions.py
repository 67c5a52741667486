"""Conditions: every operator (with the bypasses raw string comparison lets through),
load-time validation, three-valued logic, clock fields and custom conditions."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any

import pytest

from guard import load_policies
from guard.errors import PolicyError
from guard.policy._operators import url_host
from guard.policy.conditions import (
    OPERATORS,
    UNKNOWN,
    Evaluation,
    compile_condition,
    register_condition,
    unregister_condition,
    validate_condition,
)
from guard.policy.model import AccessRequest, Principal, Resource
from guard.policy.spec import Condition, ConditionGroup, CustomCondition

MONDAY_NOON_UTC = datetime(2024, 6, 3, 12, 30, tzinfo=UTC)


def request(args: Mapping[str, Any] | None = None, **kw: Any) -> AccessRequest:
    principal = kw.pop("principal", Principal("alice", ("user",), claims={"dept": "eng"}))
    resource = kw.pop("resource", Resource("tool", "read_file", tags={"fs"}, namespace="files"))
    return AccessRequest(principal, resource, "call", args or {}, time=kw.pop("time", None), **kw)


def check(cond: Any, args: Mapping[str, Any] | None = None, **kw: Any) -> bool | None:
    ev = Evaluation(request(args, **kw))
    result = compile_condition(cond).evaluate(ev)
    if result is None:
        assert ev.why  # an unknown result always says why
    return result


def c(field: str, op: str, value: Any, tz: str | None = None) -> Condition:
    return Condition(field, op, value, timezone=tz)


@pytest.mark.parametrize(
    "cond,args,expected",
    [
        (c("tool.args.a", "equals", 5), {"a": 5}, True),
        (c("tool.args.a", "equals", 5), {"a": 6}, False),
        (c("tool.args.a", "equals", "5"), {"a": 5}, None),  # cross-type: error, not False
        (c("tool.args.a", "equals", True), {"a": 1}, None),
        (c("tool.args.a", "not_equals", "x"), {"a": "y"}, True),
        (c("tool.args.a", "equals", [1, 2]), {"a": [1, 2]}, True),
        (c("tool.args.a", "equals", None), {"a": None}, True),
        # a mapping equals a mapping, never the list of its pairs (at any depth)
        (c("tool.args.a", "equals", {"m": "safe"}), {"a": {"m": "safe"}}, True),
        (c("tool.args.a", "not_equals", {"m": "safe"}), {"a": {"m": "rw"}}, True),
        (c("tool.args.a", "equals", {"m": "safe"}), {"a": [["m", "safe"]]}, None),
        (c("tool.args.a", "equals", [{"m": "safe"}]), {"a": [[["m", "safe"]]]}, False),
        (c("tool.args.a", "in", [{"m": "safe"}]), {"a": {"m": "safe"}}, True),
        (c("tool.args.a", "in", [{"k": {}}]), {"a": {"k": []}}, False),
        (c("tool.args.a", "contains", {"m": "safe"}), {"a": [{"m": "safe"}]}, True),
        (c("tool.args.a", "in", ["x", "y"]), {"a": "y"}, True),
        (c("tool.args.a", "in", ["x", "y"]), {"a": "z"}, False),
        (c("tool.args.a", "in", ["x", "y"]), {"a": 3}, None),
        (c("tool.args.a", "in", [1, "1"]), {"a": True}, None),  # True is not 1
        (c("tool.args.a", "not_in", ["x"]), {"a": "y"}, True),
        (c("tool.args.a", "contains", "adm"), {"a": "badmin"}, True),
        # a list: membership; the text within an item but no item is unknown
        (c("tool.args.a", "contains", "adm"), {"a": ["badmin"]}, None),
        (c("tool.args.a", "not_contains", "adm"), {"a": ["badmin"]}, None),
        (c("tool.args.a", "contains", "adm"), {"a": ["root", 3]}, False),
        (c("tool.args.a", "not_contains", "adm"), {"a": ["root", 3]}, True),
        (c("tool.args.a", "contains", "adm"), {"a": ["adm", "x"]}, True),
        (c("tool.args.a", "not_contains", "rm"), {"a": "ls -l"}, True),
        (c("tool.args.a", "contains", "x"), {"a": 5}, None),
        (c("tool.args.a", "starts_with", "/srv/"), {"a": "/srv/x"}, True),
        (c("tool.args.a", "starts_with", ["/a", "/b"]), {"a": "/b/c"}, True),
        (c("tool.args.a", "ends_with", ".csv"), {"a": "x.csv.exe"}, False),
        (c("tool.args.a", "regex", "/tmp/[a-z]+"), {"a": "/tmp/a/../../etc/passwd"}, False),
        (c("tool.args.a", "regex", "/tmp/[a-z]+"), {"a": "/tmp/abc"}, True),
        (c("tool.args.a", "regex", r"\d+"), {"a": 42}, True),
        (c("tool.args.a", "glob", "*.txt"), {"a": "notes.txt"}, True),
        (c("tool.args.a", "glob", ["*.txt", "*.md"]), {"a": "notes.TXT"}, False),
        (c("tool.args.a", "gt", 9), {"a": "10"}, True),  # '10' > 9 numerically
        (c("tool.args.a", "lt", "9"), {"a": "10"}, False),  # both numeric strings: numbers
        (c("tool.args.a", "gte", 10), {"a": 10.0}, True),
        (c("tool.args.a", "lte", 100), {"a": "abc"}, None),
        (c("tool.args.a", "lte", 100), {"a": "nan"}, None),
        (c("tool.args.a", "gt", 0), {"a": "inf"}, None),
        (c("tool.args.a", "gt", 0), {"a": True}, None),
        (c("tool.args.a", "lt", "2024-06-01"), {"a": "2024-05-31"}, True),  # ISO text
        (c("tool.args.a", "between", [1, 10]), {"a": "10"}, True),
        (c("tool.args.a", "between", [1, 10]), {"a": 11}, False),
        (c("tool.args.p", "path_within", "/srv/data"), {"p": "/srv/data/x.csv"}, True),
        (c("tool.args.p", "path_within", "/srv/data"), {"p": "/srv/data"}, True),
        (c("tool.args.p", "path_within", "/srv/data"), {"p": "/srv/database"}, False),
        (c("tool.args.p", "path_within", "/tmp/a"), {"p": "/tmp/a/../../etc/passwd"}, False),
        (c("tool.args.p", "path_within", ["/tmp"]), {"p": "tmp/x"}, True),  # relative to /
        (c("tool.args.p", "path_within", ["/tmp"]), {"p": "../tmp/./x"}, True),
        (c("tool.args.p", "path_within", ["/tmp"]), {"p": "//etc/passwd"}, False),
        (c("tool.args.p", "path_within", ["/tmp"]), {"p": "/tmp/x\x00.txt"}, None),
        (c("tool.args.p", "path_within", ["/tmp"]), {"p": "/tmp/a\\..\\..\\etc"}, None),
        (c("tool.args.u", "url_host", "good.com"), {"u": "http://good.com@evil.com/"}, False),
        (c("tool.args.u", "url_host", "evil.com"), {"u": "http://good.com@evil.com/"}, True),
        (c("tool.args.u", "url_host", "good.com"), {"u": "HTTPS://GOOD.com./x"}, True),
        (c("tool.args.u", "url_host", "*.good.com"), {"u": "https://api.good.com:8443/"}, True),
        (c("tool.args.u", "url_host", "*.good.com"), {"u": "https://evilgood.com/"}, False),
        (c("tool.args.u", "url_host", "*.good.com"), {"u": "https://good.com/"}, False),
        (c("tool.args.u", "url_host", "good.com"), {"u": "http://evil.com\\@good.com/"}, None),
        (c("tool.args.u", "url_host", "good.com"), {"u": "good.com/path"}, None),
        (c("tool.args.u", "url_host", "xn--bcher-kva.de"), {"u": "http://Bücher.de/"}, True),
        (c("tool.args.ip", "cidr", "10.0.0.0/8"), {"ip": "10.1.2.3"}, True),
        (c("tool.args.ip", "cidr", ["10.0.0.0/8"]), {"ip": "::ffff:10.1.2.3"}, True),
        (c("tool.args.ip", "cidr", ["10.0.0.0/8", "fd00::/8"]), {"ip": "192.168.1.1"}, False),
        (c("tool.args.ip", "cidr", "10.0.0.0/8"), {"ip": "10.0.0.300"}, None),
        (c("tool.args.q", "len_lte", 3), {"q": "abcd"}, False),
        (c("tool.args.q", "len_gte", 2), {"q": [1, 2]}, True),
        (c("tool.args.q", "len_lte", 3), {"q": 12345}, None),
        (c("tool.args", "size_lte", 20), {"q": "x" * 30}, False),
        (c("tool.args", "size_lte", 20), {"q": "é"}, True),
        (c("tool.args.q", "exists", None), {"q": None}, True),
        (c("tool.args.q", "exists", None), {}, False),
        (c("tool.args.q", "not_exists", None), {}, True),
        (c("tool.args.q.deep.0", "equals", "x"), {"q": {"deep": ["x"]}}, True),
    ],
)
def test_operator(cond: Condition, args: dict[str, Any], expected: bool | None) -> None:
    assert check(cond, args) is expected


def test_every_operator_is_exercised_above() -> None:
    import inspect

    source = inspect.getsource(inspect.getmodule(test_operator))  # type: ignore[arg-type]
    missing = [op for op in OPERATORS if f'"{op}"' not in source]
    assert missing == []


def test_size_of_a_read_only_mapping_is_the_json_it_holds() -> None:
    # the request context, a tool's meta, kept claims: read-only, recorded as JSON objects
    nested = MappingProxyType({"a": MappingProxyType({"b": 1})})  # {"a":{"b":1}}: 13 bytes
    assert check(c("tool.args", "size_lte", 13), nested) is True
    assert check(c("tool.args", "size_lte", 12), nested) is False


def test_text_in_a_mapping_too_big_to_search_is_unknown_in_any_key_order() -> None:
    big = {f"k{i:04}": "x" for i in range(6000)}
    first, last = {"a": "DROP", **big}, {**big, "a": "DROP"}
    assert check(c("tool.args.m", "contains", "DROP"), {"m": first}) is None
    assert check(c("tool.args.m", "contains", "DROP"), {"m": last}) is None
    assert check(c("tool.args.m", "contains", "DROP"), {"m": {"a": "DROP", "b": "x"}}) is True


def test_missing_field_and_redacted_value_are_unknown() -> None:
    assert check(c("tool.args.a", "equals", 1), {}) is None
    assert check(c("tool.args.a", "equals", 1), {"a": UNKNOWN}) is None
    assert check(c("tool.args", "size_lte", 100), {"a": {"b": UNKNOWN}}) is None
    assert check(c("tool.args.a", "exists", None), {"a": UNKNOWN}) is True
    assert check(c("user.claims.level", "gt", 1)) is None
    assert check(c("user.role", "equals", "admin")) is None  # seed typo: no such field


def test_seed_and_new_field_names() -> None:
    p = Principal("alice", ("user", "ops"), agent_id="bot", claims={"dept": "eng"},
                  auth_method="jwt")  # fmt: skip
    r = Resource("resource", "cfg", uri="file:///etc/app.cfg", tags={"cfg"}, meta={"v": 2})
    kw = {"principal": p, "resource": r, "method": "resources/read", "context": {"ip": "1.2.3.4"}}
    for field, value in [
        ("user.id", "alice"), ("principal.user_id", "alice"), ("user.agent_id", "bot"),
        ("user.claims.dept", "eng"), ("principal.claims.dept", "eng"),
        ("principal.auth_method", "jwt"), ("user.authenticated", True),
        ("tool.name", "cfg"), ("resource.uri", "file:///etc/app.cfg"),
        ("resource.kind", "resource"),
        ("request.resource_type", "resources"), ("request.method", "resources/read"),
        ("request.action", "call"), ("resource.meta.v", 2), ("tool.metadata.v", 2),
        ("request.context.ip", "1.2.3.4"), ("request.args.k", "v"), ("tool.args.k", "v"),
    ]:  # fmt: skip
        assert check(c(field, "equals", value), {"k": "v"}, **kw) is True, field
    assert check(c("user.roles", "contains", "ops"), **kw) is True
    assert check(c("resource.tags", "contains", "cfg"), **kw) is True
    assert check(c("tool.namespace", "equals", None), **kw) is True  # present, but null


def test_kleene_groups() -> None:
    true, false, unknown = (
        c("user.id", "equals", "alice"),
        c("user.id", "equals", "x"),
        c("tool.args.nope", "equals", 1),
    )
    g = ConditionGroup
    assert check(g("all", (true, unknown))) is None
    assert check(g("all", (unknown, false))) is False
    assert check(g("any", (unknown, true))) is True
    assert check(g("any", (unknown, false))) is None
    assert check(g("not", (unknown,))) is None
    assert check(g("not", (false,))) is True
    assert check(g("all", (g("any", (false, true)), g("not", (false,))))) is True


def test_clock_fields_use_the_request_clock_and_zone() -> None:
    t = MONDAY_NOON_UTC  # 12:30 UTC = 14:30 in Paris, 21:30 in Tokyo
    assert check(c("request.time.hour", "equals", 12), time=t) is True
    assert check(c("request.time.hour", "equals", 14, "Europe/Paris"), time=t) is True
    assert check(c("request.time.minute", "equals", 30), time=t) is True
    assert check(c("request.time.weekday", "in", ["mon", "tue"]), time=t) is True
    assert check(c("request.time.weekday", "equals", 0), time=t) is True
    assert check(c("request.time.weekday", "equals", "Monday"), time=t) is True
    late = datetime(2024, 6, 2, 23, 30, tzinfo=UTC)  # Sunday in UTC, Monday in Tokyo
    assert check(c("request.time.weekday", "equals", "mon", "Asia/Tokyo"), time=late) is True
    assert check(c("request.time.date", "equals", "2024-06-03", "Asia/Tokyo"), time=late) is True
    assert check(c("request.time", "gt", "2024-06-03T12:00:00Z"), time=t) is True
    assert check(c("request.time", "lt", "2024-06-03T14:00:00", "Europe/Paris"), time=t) is False
    naive = datetime(2024, 6, 3, 12, 30)  # a naive clock is UTC
    assert check(c("request.time.hour", "equals", 12), time=naive) is True
    assert check(c("request.timestamp", "equals", t.timestamp()), time=t) is True
    assert check(c("request.time.date", "equals", t.date()), time=t) is True  # YAML date
    assert check(c("request.time.date", "between", [t.date(), "2024-07-01"]), time=t) is True
    now = datetime.now(UTC)
    assert check(c("request.time.date", "gte", (now.date()).isoformat())) is True


@pytest.mark.parametrize(
    "cond,fragment",
    [
        (c("tool.args.a", "regex", "(a+)+$"), "catastroph"),
        (c("tool.args.a", "regex", "([a-z"), "invalid regex"),
        (c("tool.args.ip", "cidr", "10.0.0.0/33"), "invalid network"),
        (c("request.time.hour", "gt", 9, "Mars/Olympus"), "unknown timezone"),
        (c("tool.args.a", "hour_of", 1), "unknown operator"),
        (c("tool.args.a", "in", "abc"), "must be a list"),
        (c("tool.args.a", "gt", [1]), "must be a number"),
        (c("tool.args.a", "gt", float("nan")), "nan"),
        (c("tool.args.a", "between", [10, 1]), "low must not exceed high"),
        (c("request.time.hour", "between", [22, 6]), "an `any` group of two conditions"),
        (c("request.time.hour", "equals", 24), "0 to 23, never 24"),
        (c("request.time.hour", "gte", 9, "localtime"), "depends on the machine"),
        (c("request.time.hour", "gte", 9, "right/UTC"), "depends on the machine"),
        (c("request.time.minute", "in", [0, 30, 60]), "0 to 59, never 60"),
        (c("request.time.weekday", "between", ["fri", "mon"]), "fri to mon"),
        (c("tool.args.p", "path_within", "relative/dir"), "must be absolute"),
        (c("tool.args.u", "url_host", "evil.com/x"), "invalid host"),
        (c("tool.args.q", "len_lte", -1), "non-negative"),
        (c("tool.args.q", "size_lte", True), "non-negative"),
        (c("tool.args.a", "starts_with", True), "string"),  # a number stands for its text
        (c("request.time.weekday", "equals", "someday"), "weekday"),
        (c("tool.args.a", "equals", 1, "UTC"), "only to request.time"),
        (c("tool..a", "equals", 1), "invalid field"),
        (CustomCondition("never_registered"), "unknown custom condition"),
        (
            ConditionGroup("not", (c("user.id", "equals", "a"), c("user.id", "equals", "b"))),
            "exactly one",
        ),
    ],
)
def test_validate_condition_reports_bad_values(cond: Any, fragment: str) -> None:
    problems = validate_condition(cond)
    assert problems and fragment in " ".join(problems), problems
    with pytest.raises(PolicyError):
        compile_condition(cond)


def test_valid_conditions_have_no_problems() -> None:
    for cond in [
        c("tool.args.a", "regex", "^/srv/[a-z]+$"),
        c("tool.args.ip", "cidr", ["10.0.0.0/8", "::1/128"]),
        c("request.time.hour", "between", [9, 17], "Europe/Paris"),
        c("tool.args.u", "url_host", ["*.example.com", "example.com", "127.0.0.1"]),
        ConditionGroup("any", (c("user.id", "in", ["a", "b"]), c("tool.args.x", "exists", None))),
    ]:
        assert validate_condition(cond) == [], cond


def test_custom_conditions_get_a_read_only_context() -> None:
    seen: list[Mapping[str, Any]] = []

    def spy(ctx: Mapping[str, Any]) -> bool:
        seen.append(ctx)
        return bool(ctx["tool"]["args"]["n"] <= ctx["params"]["max"])

    register_condition("test_spy", spy)
    try:
        cond = CustomCondition("test_spy", params={"max": 3})
        assert check(cond, {"n": 2}, time=MONDAY_NOON_UTC) is True
        assert check(cond, {"n": 5}) is False
        ctx = seen[0]
        assert ctx["user"]["id"] == "alice" and ctx["principal"]["user_id"] == "alice"
        assert ctx["request"]["time"] == MONDAY_NOON_UTC and ctx["resource"]["kind"] == "tool"
        with pytest.raises(TypeError):
            ctx["user"]["id"] = "mallory"  # type: ignore[index]
        assert check(cond, {}) is None  # KeyError inside: unknown, not an exception
    finally:
        unregister_condition("test_spy")


def test_custom_condition_results_must_be_bool_and_objects_work() -> None:
    class Weekend:
        def evaluate(self, context: Mapping[str, Any]) -> bool:
            return context["request"]["time"].weekday() >= 5

    register_condition("test_weekend", Weekend)  # a class: instantiated, never called as is
    register_condition("test_truthy", lambda ctx: "yes")
    try:
        assert check(CustomCondition("test_weekend"), time=MONDAY_NOON_UTC) is False
        assert check(CustomCondition("test_truthy")) is None
    finally:
        unregister_condition("test_weekend")
        unregister_condition("test_truthy")
    with pytest.raises(TypeError):
        register_condition("bad", 42)
    with pytest.raises(ValueError):
        register_condition("", lambda ctx: True)


def test_compiled_condition_keeps_the_function_it_was_compiled_with() -> None:
    register_condition("test_flip", lambda ctx: True)
    try:
        compiled = compile_condition(CustomCondition("test_flip"))
        register_condition("test_flip", lambda ctx: False)
        assert compiled.evaluate(Evaluation(request())) is True
    finally:
        unregister_condition("test_flip")


def test_unknown_reasons_never_quote_argument_values() -> None:
    secret = "hunter2-very-secret"
    for cond in [
        c("tool.args.pw", "gt", 3),
        c("tool.args.pw", "cidr", "10.0.0.0/8"),
        c("tool.args.pw", "url_host", "a.com"),
        c("tool.args.pw", "len_lte", 1),
    ]:
        for value in (secret, f"http://{secret}%00.com/", f"http://x.com\\@{secret}"):
            ev = Evaluation(request({"pw": value if "len" not in cond.operator else 7}))
            assert compile_condition(cond).evaluate(ev) is None
            assert secret not in ev.why


ALICE = Principal("alice", roles=("user",))


# request.resource_type is the method's prefix, as mcp-auth-guard 1.0.0 set it (found in
# review: it was the singular kind, so a seed policy's deny rule was skipped)

SEED_POLICY = """\
name: p
default_effect: deny
rules:
  - name: no_prompts
    effect: deny
    priority: 200
    conditions:
      - {field: request.resource_type, operator: equals, value: prompts}
  - name: everyone
    effect: allow
"""


def test_seed_resource_type_condition_still_denies_via_policyset() -> None:
    # mcp-auth-guard 1.0.0 sets resource_type = method.split("/")[0] ("prompts"), and this
    # deny rule denies the prompt there. Here the field reads "prompt": the deny is skipped.
    ps = load_policies(SEED_POLICY)
    req = AccessRequest(ALICE, Resource("prompt", "summarize"), "get", method="prompts/get")
    decision = ps.decide(req)
    assert not decision.allowed and decision.rule == "no_prompts", decision


def test_seed_resource_type_condition_still_denies_via_compat_engine() -> None:
    # The page's own API with the plural spelling mcp-auth-guard's middleware produced.
    from guard.policy import PolicyEngine, PolicyLoader
    from guard.schemas import AuthContext, ResourceContext, ToolResource

    engine = PolicyEngine([PolicyLoader.load_from_string(SEED_POLICY)])
    auth = AuthContext(user_id="alice", roles=["user"], authenticated=True)
    ctx = ResourceContext(resource_type="prompts", resource=ToolResource(name="summarize"),
                          action="get", method="prompts/get")  # fmt: skip
    decision = asyncio.run(engine.evaluate(auth, ctx))
    assert not decision.allowed and decision.matched_rule == "no_prompts"


# url_host compares IP addresses in canonical form (found in review: another spelling of
# the same address escaped a deny rule)

METADATA_DENY = """\
name: egress
default_effect: deny
rules:
  - name: no_cloud_metadata
    effect: deny
    priority: 500
    tools: {names: [fetch]}
    conditions:
      - {field: tool.args.url, operator: url_host, value: ["169.254.169.254", "::1"]}
  - name: fetch_anything_else
    effect: allow
    tools: {names: [fetch]}
"""


@pytest.mark.parametrize(
    "url",
    [
        "http://169.254.169.254/latest/meta-data/",  # control: denied today
        "http://[::ffff:169.254.169.254]/latest/meta-data/",  # IPv4-mapped IPv6
        "http://[::ffff:a9fe:a9fe]/latest/meta-data/",  # same, hex form
        "http://[0:0:0:0:0:0:0:1]/admin",  # ::1 written out in full
        "http://2852039166/latest/meta-data/",  # 169.254.169.254 as one decimal number
        "http://0xa9fea9fe/latest/meta-data/",  # ... and in hex (inet_aton forms)
    ],
)
def test_url_host_deny_rule_sees_the_real_ip(url: str) -> None:
    ps = load_policies(METADATA_DENY)
    req = AccessRequest(ALICE, Resource("tool", "fetch"), "call", args={"url": url})
    decision = ps.decide(req)
    assert not decision.allowed and decision.rule == "no_cloud_metadata", (url, decision)


def test_url_host_refuses_exactly_controls_space_and_backslash() -> None:
    refused = set()
    for code in range(0x80):
        try:
            url_host(f"http://ex.com/a{chr(code)}b")
        except ValueError:
            refused.add(code)
    assert refused == {*range(0x21), ord("\\")}


def test_resource_type_without_a_method_is_the_kinds_plural() -> None:
    ps = load_policies(SEED_POLICY)
    request = AccessRequest(ALICE, Resource("prompt", "summarize"), "get")  # no method
    assert ps.decide(request).rule == "no_prompts"
    listing = AccessRequest(ALICE, Resource("tool", "t"), "list", method="tools/list")
    assert ps.decide(listing).rule == "everyone"
