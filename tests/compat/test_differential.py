"""Differential test: the guard decides like mcp-auth-guard 1.0.0, except where it was wrong.

Hypothesis generates policies in mcp-auth-guard's format (agents, tools, resources, prompts,
actions, conditions with its operators, priorities, default effects) and requests (its
`AuthContext` and `ResourceContext`, with its plural resource types). Both engines load the
same dicts; they must agree on `allowed` and on the deciding rule.

The generator stays out of the documented bug cases; each of those has its own test below
asserting mcp-auth-guard's answer (so we notice if it changes) and ours:

- global priority across files          - default effect across files
- deny rule with an erroring or missing-field condition
- regex anchoring                       - list-valued `contains`
- resource `uris` matched on the URI    - type-mismatch comparisons

With several policies, mcp-auth-guard's answer is computed on the documented semantics (all
rules merged in file order, so priority is global; default allow only if every policy says
allow) and must still agree with ours.

`GUARD_DIFF_EXAMPLES` sets the number of generated policies (default 500, each decided
against up to 8 requests; a third as many for several policies). 5,000 ran clean here.
"""

from __future__ import annotations

import asyncio
import copy
import os
import re
from collections.abc import Coroutine
from typing import Any

import mcp_auth_guard.policy as seed_policy
import mcp_auth_guard.schemas as seed_schemas
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from guard.errors import PolicyError
from guard.policy import PolicyEngine
from guard.schemas import AuthContext, ResourceContext, ToolResource

EXAMPLES = int(os.environ.get("GUARD_DIFF_EXAMPLES", "500"))

USERS = ["alice", "bob", "admin_1", "svc_bot", "carol_service"]
ROLES = ["admin", "user", "intern", "ops"]
AGENTS = ["claude", "gpt-4"]
TOOLS = ["get_weather", "get_forecast", "delete_city", "admin_reset", "list_cities", "send_email"]
URIS = ["weather://paris", "admin://config", "public://readme", "file:///etc/passwd"]
PROMPTS = ["summarize", "greet_user", "admin_prompt"]
ACTIONS = ["call", "read", "get", "list"]
NAMESPACES = ["weather", "admin"]
TAGS = ["safe", "public", "danger"]
CITIES = ["Paris", "Oslo", "Lima"]
MODES = ["fast", "full", "admin"]
TEAMS = ["blue", "red"]
KINDS = {"tools": TOOLS, "resources": URIS, "prompts": PROMPTS}

USER_PATTERNS = [*USERS, "admin_*", "*_service", "*", "svc_?ot", "*o*"]
TOOL_PATTERNS = ["get_*", "*_city", "*", "admin_*", "*weather*", "send_?mail", "*s"]
URI_PATTERNS = ["weather://*", "*://config", "file:///*", "*", "*://*e*"]
PROMPT_PATTERNS = ["admin_*", "*", "*e*", "greet_*"]
SCHEMES = ["weather", "admin", "file", "public"]

# Condition fields that are always present in generated requests, by value type. Values
# and operators are chosen so both engines compare like with like (type mismatches,
# missing fields, unanchored regexes and list-valued substring tests are bug cases).
STRING_FIELDS = {
    "user.id": USERS,
    "tool.name": TOOLS + URIS + PROMPTS,
    "request.action": ACTIONS,
    "request.method": ["tools/call", "resources/read", "prompts/get", "tools/list"],
    "tool.args.city": CITIES,
    "tool.args.mode": MODES,
    "user.claims.team": TEAMS,
    "tool.metadata.owner": TEAMS,
}
NULLABLE_FIELDS = {"user.agent_id": AGENTS, "tool.namespace": NAMESPACES}
LIST_FIELDS = {"user.roles": ROLES, "tool.tags": TAGS}
STRING_OPS = [
    "equals",
    "not_equals",
    "in",
    "not_in",
    "contains",
    "not_contains",
    "starts_with",
    "ends_with",
    "regex",
]
NUMBER_OPS = ["equals", "not_equals", "gt", "lt", "gte", "lte", "in", "not_in"]


def _fragment(values: list[str]) -> st.SearchStrategy[str]:
    return st.sampled_from(values).flatmap(
        lambda v: st.tuples(st.integers(0, len(v)), st.integers(0, len(v))).map(
            lambda ij: v[min(ij) : max(ij)] or v
        )
    )


@st.composite
def conditions(draw: st.DrawFn) -> dict[str, Any]:
    family = draw(st.sampled_from(["string", "nullable", "number", "bool", "list"]))
    if family == "string":
        field, pool = draw(st.sampled_from(sorted(STRING_FIELDS.items())))
        op = draw(st.sampled_from(STRING_OPS))
        if op in ("in", "not_in"):
            value: Any = draw(st.lists(st.sampled_from(pool), min_size=1, max_size=3))
        elif op == "regex":  # anchored at both ends: the same under match and fullmatch
            body = draw(
                st.sampled_from(
                    [
                        re.escape(draw(_fragment(pool))) + ".*",
                        "[a-z_]+",
                        "|".join(map(re.escape, pool[:2])),
                    ]
                )
            )
            value = f"^({body})$"
        elif op in ("contains", "not_contains", "starts_with", "ends_with"):
            value = draw(_fragment(pool))
        else:
            value = draw(st.sampled_from(pool))
    elif family == "nullable":
        field, pool = draw(st.sampled_from(sorted(NULLABLE_FIELDS.items())))
        op = draw(st.sampled_from(["equals", "not_equals", "in", "not_in"]))
        value = (
            draw(st.lists(st.sampled_from(pool), min_size=1, max_size=2))
            if op.endswith("in")
            else draw(st.sampled_from(pool))
        )
    elif family == "number":
        field = "tool.args.count"
        op = draw(st.sampled_from(NUMBER_OPS))
        number = st.one_of(st.integers(0, 10), st.sampled_from([2.5, 7.0]))
        value = (
            draw(st.lists(number, min_size=1, max_size=3)) if op.endswith("in") else draw(number)
        )
    elif family == "bool":
        field = draw(st.sampled_from(["tool.args.readonly", "user.authenticated"]))
        op = draw(st.sampled_from(["equals", "not_equals"]))
        value = draw(st.booleans())
    else:  # membership of a whole item: the same as a substring test on the list's text
        field, pool = draw(st.sampled_from(sorted(LIST_FIELDS.items())))
        op = draw(st.sampled_from(["contains", "not_contains"]))
        value = draw(st.sampled_from(pool))
    return {"field": field, "operator": op, "value": value}


def _maybe_list(draw: st.DrawFn, pool: list[str], *, empty: bool = True) -> list[str]:
    return draw(
        st.lists(st.sampled_from(pool), min_size=0 if empty else 1, max_size=3, unique=True)
    )


@st.composite
def matcher(draw: st.DrawFn, keys: dict[str, list[str]]) -> dict[str, Any]:
    chosen = draw(st.lists(st.sampled_from(sorted(keys)), max_size=len(keys), unique=True))
    return {k: _maybe_list(draw, keys[k]) for k in chosen}


@st.composite
def rules(draw: st.DrawFn, name: str) -> dict[str, Any]:
    rule: dict[str, Any] = {"name": name, "effect": draw(st.sampled_from(["allow", "deny"]))}
    if draw(st.booleans()):
        rule["priority"] = draw(st.sampled_from([10, 100, 500]))
    if draw(st.booleans()):
        agents = draw(
            matcher(
                {
                    "user_id": USER_PATTERNS,
                    "roles": [*ROLES, "*"],
                    "agent_id": [*AGENTS, "gpt-*"],
                    "patterns": USER_PATTERNS,
                }
            )
        )
        if "user_id" in agents and len(agents["user_id"]) == 1 and draw(st.booleans()):
            agents["user_id"] = agents["user_id"][0]  # mcp-auth-guard also took a bare string
        rule["agents"] = agents
    if draw(st.integers(0, 3)):
        rule["tools"] = draw(
            matcher(
                {"names": TOOLS, "patterns": TOOL_PATTERNS, "namespaces": NAMESPACES, "tags": TAGS}
            )
        )
    if not draw(st.integers(0, 3)):
        rule["resources"] = draw(
            matcher({"uris": URIS, "patterns": URI_PATTERNS, "schemes": SCHEMES})
        )
    if not draw(st.integers(0, 3)):
        rule["prompts"] = draw(
            matcher({"names": PROMPTS, "patterns": PROMPT_PATTERNS, "tags": TAGS})
        )
    if draw(st.booleans()):
        rule["actions"] = draw(
            st.lists(st.sampled_from([*ACTIONS, "*", "l*"]), min_size=1, max_size=3, unique=True)
        )
    if draw(st.integers(0, 2)):
        rule["conditions"] = draw(st.lists(conditions(), max_size=2))
    return rule


@st.composite
def policy_dicts(draw: st.DrawFn, count: int) -> list[dict[str, Any]]:
    out, n = [], 0
    for i in range(count):
        k = draw(st.integers(0, 5))
        out.append(
            {
                "name": f"p{i}",
                "default_effect": draw(st.sampled_from(["allow", "deny"])),
                "rules": [draw(rules(f"r{n + j}")) for j in range(k)],
            }
        )
        n += k
    return out


@st.composite
def requests(draw: st.DrawFn) -> tuple[dict[str, Any], dict[str, Any]]:
    auth = {
        "user_id": draw(st.sampled_from(USERS)),
        "roles": _maybe_list(draw, ROLES),
        "agent_id": draw(st.sampled_from([None, *AGENTS])),
        "claims": {"team": draw(st.sampled_from(TEAMS))},
        "authenticated": draw(st.integers(0, 9)) > 0,
    }
    resource_type = draw(st.sampled_from(sorted(KINDS)))
    action = draw(st.sampled_from(ACTIONS))
    resource = {
        "name": draw(st.sampled_from(KINDS[resource_type])),
        "namespace": draw(st.sampled_from([None, *NAMESPACES])),
        "tags": _maybe_list(draw, TAGS),
        "metadata": {"owner": draw(st.sampled_from(TEAMS))},
        "arguments": {
            "city": draw(st.sampled_from(CITIES)),
            "mode": draw(st.sampled_from(MODES)),
            "count": draw(st.integers(0, 10)),
            "readonly": draw(st.booleans()),
        },
    }
    method = f"{resource_type}/{action}"
    return auth, {
        "resource_type": resource_type,
        "resource": resource,
        "action": action,
        "method": method,
    }


def _sync(coro: Coroutine[Any, Any, Any]) -> Any:
    # mcp-auth-guard's evaluate never awaits anything real: drive it without an event loop
    try:
        coro.send(None)
    except StopIteration as done:
        return done.value
    raise AssertionError("mcp-auth-guard's evaluate suspended")


def seed_engine(policies: list[dict[str, Any]]) -> Any:
    configs = [seed_policy.PolicyLoader.load_from_dict(copy.deepcopy(p)) for p in policies]
    return seed_policy.PolicyEngine(configs)


def seed_decide(engine: Any, auth: dict[str, Any], res: dict[str, Any]) -> tuple[bool, str | None]:
    d = _sync(
        engine.evaluate(
            seed_schemas.AuthContext(**auth),
            seed_schemas.ResourceContext(
                **{**res, "resource": seed_schemas.ToolResource(**res["resource"])}
            ),
        )
    )
    return bool(d.allowed), d.matched_rule


def our_decide(
    engine: PolicyEngine, auth: dict[str, Any], res: dict[str, Any]
) -> tuple[bool, str | None]:
    d = engine.evaluate_sync(
        AuthContext(**auth),
        ResourceContext(**{**res, "resource": ToolResource(**res["resource"])}),
    )
    return d.allowed, d.matched_rule


def merged(policies: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One policy with every rule in file order and default allow only if all allow: the
    guard's documented semantics, expressed in mcp-auth-guard's own terms."""
    every_allow = all(p["default_effect"] == "allow" for p in policies)
    return [
        {
            "name": "merged",
            "default_effect": "allow" if every_allow else "deny",
            "rules": [r for p in policies for r in p["rules"]],
        }
    ]


_SETTINGS = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@_SETTINGS
@given(policy_dicts(1), st.lists(requests(), min_size=1, max_size=8))
def test_one_policy_decides_like_mcp_auth_guard(
    policies: list[dict[str, Any]], reqs: list[tuple[dict[str, Any], dict[str, Any]]]
) -> None:
    theirs, ours = seed_engine(policies), PolicyEngine(copy.deepcopy(policies))
    for auth, res in reqs:
        assert our_decide(ours, auth, res) == seed_decide(theirs, auth, res), (auth, res)


@settings(_SETTINGS, max_examples=max(1, EXAMPLES // 3))
@given(st.integers(2, 3).flatmap(policy_dicts), st.lists(requests(), min_size=1, max_size=8))
def test_several_policies_decide_like_mcp_auth_guard_on_merged_rules(
    policies: list[dict[str, Any]], reqs: list[tuple[dict[str, Any], dict[str, Any]]]
) -> None:
    theirs, ours = seed_engine(merged(policies)), PolicyEngine(copy.deepcopy(policies))
    for auth, res in reqs:
        assert our_decide(ours, auth, res) == seed_decide(theirs, auth, res), (auth, res)


# --- the documented differences -------------------------------------------------------------

USER = {"user_id": "alice", "roles": ["user"], "authenticated": True}


def _tool(name: str = "t", **arguments: Any) -> dict[str, Any]:
    return {
        "resource_type": "tools",
        "resource": {"name": name, "arguments": arguments},
        "action": "call",
        "method": "tools/call",
    }


def _both(
    policies: list[dict[str, Any]], res: dict[str, Any], auth: dict[str, Any] = USER
) -> tuple[tuple[bool, str | None], tuple[bool, str | None]]:
    return (
        seed_decide(seed_engine(policies), auth, res),
        our_decide(PolicyEngine(copy.deepcopy(policies)), auth, res),
    )


def test_global_priority_across_files() -> None:
    first = {"name": "a", "rules": [{"name": "low_allow", "effect": "allow", "priority": 1}]}
    second = {"name": "b", "rules": [{"name": "high_deny", "effect": "deny", "priority": 900}]}
    theirs, ours = _both([first, second], _tool())
    assert theirs == (True, "low_allow")  # files run in order: priority only counts within one
    assert ours == (False, "high_deny")


def test_default_effect_across_files() -> None:
    strict = {"name": "strict", "default_effect": "deny", "rules": []}
    lax = {"name": "lax", "default_effect": "allow", "rules": []}
    theirs, ours = _both([strict, lax], _tool())
    assert theirs == (True, None)  # one allow default opened everything
    assert ours == (False, None)  # allowed by default only if every policy says so
    assert _both([{**lax, "name": "l1"}, {**lax, "name": "l2"}], _tool())[1] == (True, None)


@pytest.mark.parametrize(
    "condition",
    [
        {"field": "tool.args.size", "operator": "gt", "value": 100},  # missing field
        {"field": "tool.args.size", "operator": "equals", "value": "big"},  # missing field
        {"field": "tool.args.path", "operator": "gt", "value": 5},  # str > int raises
    ],
)
def test_deny_rule_with_erroring_or_missing_field_condition(condition: dict[str, Any]) -> None:
    policy = {
        "name": "p",
        "default_effect": "allow",
        "rules": [{"name": "no_big", "effect": "deny", "conditions": [condition]}],
    }
    theirs, ours = _both([policy], _tool(path="/tmp/x"))
    assert theirs == (True, None)  # the deny rule was skipped: fail open
    assert ours == (False, "no_big")  # cannot tell, so the deny rule applies: fail closed


def test_allow_rule_with_missing_field_does_not_apply() -> None:
    policy = {
        "name": "p",
        "rules": [
            {
                "name": "ok",
                "effect": "allow",
                "conditions": [
                    {"field": "tool.args.size", "operator": "not_equals", "value": "big"}
                ],
            }
        ],
    }
    theirs, ours = _both([policy], _tool())
    assert theirs == (True, "ok")  # None != "big" held, so the allow rule applied
    assert ours == (False, None)


def test_regex_anchoring() -> None:
    policy = {
        "name": "p",
        "rules": [
            {
                "name": "tmp_only",
                "effect": "allow",
                "conditions": [
                    {"field": "tool.args.path", "operator": "regex", "value": "/tmp/[a-z]+"}
                ],
            }
        ],
    }
    escape = _tool(path="/tmp/a/../../etc/passwd")
    theirs, ours = _both([policy], escape)
    assert theirs == (True, "tmp_only")  # re.match: only the start had to match
    assert ours == (False, None)  # the whole value must match
    assert _both([policy], _tool(path="/tmp/abc")) == ((True, "tmp_only"), (True, "tmp_only"))


def test_list_valued_contains() -> None:
    policy = {
        "name": "p",
        "rules": [
            {
                "name": "admins",
                "effect": "allow",
                "conditions": [{"field": "user.roles", "operator": "contains", "value": "admin"}],
            }
        ],
    }
    superadmin = {**USER, "roles": ["superadmin"]}
    theirs, ours = _both([policy], _tool(), superadmin)
    assert theirs == (True, "admins")  # "admin" in "['superadmin']"
    assert ours == (False, None)  # membership: "admin" is not one of the roles
    admin = {**USER, "roles": ["admin"]}
    assert _both([policy], _tool(), admin) == ((True, "admins"), (True, "admins"))


def test_resource_uris_matched_on_uri() -> None:
    policy = {
        "name": "p",
        "rules": [
            {"name": "no_admin", "effect": "deny", "resources": {"schemes": ["admin"]}},
            {"name": "rest", "effect": "allow", "priority": 1},
        ],
    }
    res = {
        "resource_type": "resources",
        "action": "read",
        "method": "resources/read",
        "resource": {"name": "config", "metadata": {"uri": "admin://config"}},
    }
    theirs, ours = _both([policy], res)
    assert theirs == (True, "rest")  # the scheme was looked for in the name `config`
    assert ours == (False, "no_admin")


@pytest.mark.parametrize(
    "condition,args,theirs_allowed",
    [
        # a number given as a string: mcp-auth-guard raised (str > int) and skipped the rule
        ({"field": "tool.args.count", "operator": "gt", "value": 5}, {"count": "50"}, True),
        # a string compared with a number for equality: silently unequal there
        ({"field": "tool.args.count", "operator": "equals", "value": 50}, {"count": "50"}, True),
        # true == 1 in Python: mcp-auth-guard saw a match
        ({"field": "tool.args.flag", "operator": "equals", "value": 1}, {"flag": True}, False),
    ],
)
def test_type_mismatch_comparisons(
    condition: dict[str, Any], args: dict[str, Any], theirs_allowed: bool
) -> None:
    policy = {
        "name": "p",
        "default_effect": "allow",
        "rules": [{"name": "guarded", "effect": "deny", "conditions": [condition]}],
    }
    theirs, ours = _both([policy], _tool(**args))
    assert theirs[0] is theirs_allowed
    assert ours == (False, "guarded")  # read as numbers, or unknown: the deny rule applies


def test_unknown_keys_are_load_errors() -> None:
    typo = {"name": "p", "rules": [{"name": "r", "effect": "allow", "tool": {"names": ["x"]}}]}
    theirs = seed_decide(seed_engine([typo]), USER, _tool("anything"))
    assert theirs == (True, "r")  # `tool:` was ignored, so the rule matched every tool
    with pytest.raises(PolicyError, match="did you mean `tools`"):
        PolicyEngine([typo])


def test_in_with_a_string_value_is_a_load_error() -> None:
    substring = {
        "name": "p",
        "rules": [
            {
                "name": "r",
                "effect": "allow",
                "conditions": [{"field": "user.id", "operator": "in", "value": "alice_admin"}],
            }
        ],
    }
    assert seed_decide(seed_engine([substring]), USER, _tool()) == (True, "r")
    with pytest.raises(PolicyError, match="must be a list"):
        PolicyEngine([substring])


@pytest.mark.parametrize(
    "agents",
    [
        {"user_id": ["*"]},
        {"user_id": "*"},
        {"patterns": ["*"]},
        {"agent_id": ["*"]},
        {"roles": ["*"]},
        {"roles": []},
    ],
)
@pytest.mark.parametrize("user_id", [None, "alice"])
def test_callers_without_ids_or_roles_match_like_mcp_auth_guard(
    agents: dict[str, Any], user_id: str | None
) -> None:
    policy = {"name": "p", "rules": [{"name": "r", "effect": "allow", "agents": agents}]}
    caller = {"user_id": user_id, "roles": [], "authenticated": True}
    theirs, ours = _both([policy], _tool(), caller)
    assert ours == theirs
    assert ours[0] is ("roles" not in agents or agents["roles"] == [])


def test_the_generated_cases_are_not_trivial() -> None:
    # guard against a generator that only produces default decisions
    seen: set[tuple[bool, bool]] = set()

    @settings(max_examples=200, deadline=None, database=None)
    @given(policy_dicts(1), requests())
    def collect(policies: list[dict[str, Any]], req: tuple[dict[str, Any], dict[str, Any]]) -> None:
        allowed, rule = our_decide(PolicyEngine(copy.deepcopy(policies)), *req)
        seen.add((allowed, rule is not None))

    collect()
    assert seen == {(True, True), (False, True), (True, False), (False, False)}


def test_async_evaluate_agrees_with_sync() -> None:
    policy = [{"name": "p", "rules": [{"name": "r", "effect": "allow", "tools": {"names": ["t"]}}]}]
    engine = PolicyEngine(policy)
    auth = AuthContext(**USER)
    res = ResourceContext(**{**_tool(), "resource": ToolResource(name="t")})
    via_async = asyncio.run(engine.evaluate(auth, res))
    assert (via_async.allowed, via_async.matched_rule) == (True, "r")
    assert engine.evaluate_sync(auth, res).allowed is True
