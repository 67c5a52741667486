"""Differential test of every shortcut that reuses a decision: the policy set's memo, the
listing answers a guard gives again (`Answered`), the component caches. Random small
policies with conditions on every fact a decision can read (claims, key id, auth method,
agent id, request context, the clock across hour and weekday boundaries, arguments,
component tags, meta and version, a custom condition reading a flag that changes), random
sequences of requests from callers that differ from one another in one fact each (user
id, roles, agent id, authentication, or only what conditions read), with reloads, drafts
and tools registered again, through the real middleware (in-memory client): each answer,
and each record, is compared with a fresh decision of a policy set compiled anew, which
has nothing to reuse. For a long run: `GUARD_PROPERTY_EXAMPLES=100000`."""

from __future__ import annotations

import asyncio
import json
import os
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from random import Random
from typing import Any

import pytest
from fastmcp import Client, FastMCP
from fastmcp.prompts.base import Prompt
from fastmcp.tools.base import Tool
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry

import guard._deciding
from guard import GuardMiddleware
from guard._fastmcp import read_target, to_resource
from guard.audit import open_store
from guard.identity.base import RequestInfo
from guard.policy.conditions import register_condition, unregister_condition
from guard.policy.model import AccessRequest, Principal, Resource
from guard.policy.policyset import PolicySet
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
from guard.telemetry import GuardTelemetry

EXAMPLES = int(os.environ.get("GUARD_PROPERTY_EXAMPLES", "10000")) // 100 or 1

SERVER = "diff"
CLOCKS = [  # across an hour boundary and a weekday boundary (2024-01-05 is a Friday)
    datetime(2024, 1, 5, 11, 59, 59, tzinfo=UTC),
    datetime(2024, 1, 5, 12, 0, 0, tzinfo=UTC),
    datetime(2024, 1, 5, 23, 59, 59, tzinfo=UTC),
    datetime(2024, 1, 6, 0, 0, 0, tzinfo=UTC),
]
TOOLS = [  # name, tags, version, meta
    ("t_read", {"safe"}, None, {"owner": "ops"}),
    ("t_write", {"fs"}, "2", {"owner": "dev"}),
    ("t_net", {"net", "safe"}, None, {}),
    ("x_admin", set(), "1", {"owner": "ops"}),
]
PROMPTS = [("p_greet", {"safe"}), ("p_secret", {"fs"})]
TEMPLATE = "users://{id}"
URIS = ["data://a", "users://1", "users://2"]
FLAG: dict[str, bool] = {"on": False}  # what the custom condition reads


def _flag(ctx: Any) -> bool:
    return FLAG["on"]


CONDITIONS: list[ConditionNode] = [
    Condition("user.claims.level", "equals", 5),
    Condition("principal.key_id", "equals", "k1"),
    Condition("user.auth_method", "equals", "jwt"),
    Condition("user.agent_id", "equals", "bot"),
    Condition("user.roles", "contains", "admin"),
    Condition("user.id", "in", ("alice", "carol")),
    Condition("request.context.transport", "equals", "memory"),
    Condition("request.context.session_id", "exists", None),
    Condition("request.context.server", "equals", SERVER),
    Condition("request.time.hour", "lt", 12),
    Condition("request.time.weekday", "in", ("mon", "tue", "wed", "thu", "fri")),
    Condition("request.time.date", "equals", "2024-01-05"),
    Condition("tool.args.a", "equals", 1),
    Condition("tool.version", "equals", "2"),
    Condition("tool.metadata.owner", "equals", "ops"),
    Condition("tool.tags", "contains", "safe"),
    Condition("request.method", "equals", "tools/list"),
    Condition("request.action", "equals", "list"),
    CustomCondition("diff_flag"),
]


def _condition(rnd: Random) -> ConditionNode:
    if rnd.random() < 0.2:
        return ConditionGroup(rnd.choice(["all", "any"]), tuple(rnd.sample(CONDITIONS, 2)))
    node = rnd.choice(CONDITIONS)
    return ConditionGroup("not", (node,)) if rnd.random() < 0.2 else node


def _rule(rnd: Random, index: int) -> RuleSpec:
    def maybe(make: Any, chance: float = 0.5) -> Any:
        return make() if rnd.random() < chance else None

    names = [name for name, *_ in TOOLS]
    return RuleSpec(
        name=f"r{index}",
        effect=rnd.choice(["allow", "deny"]),
        priority=rnd.choice([50, 100, 200]),
        agents=maybe(
            lambda: AgentMatch(
                user_id=maybe(lambda: tuple(rnd.sample(["alice", "bob", "a*"], 1))),
                roles=maybe(lambda: tuple(rnd.sample(["admin", "user", "*"], 1))),
                agent_id=maybe(lambda: ("bot",), 0.3),
            )
        ),
        tools=maybe(
            lambda: ToolMatch(
                names=maybe(lambda: tuple(rnd.sample(names, 2))),
                patterns=maybe(lambda: (rnd.choice(["t_*", "*_admin", "*"]),), 0.3),
                tags=maybe(lambda: (rnd.choice(["safe", "fs", "net"]),), 0.4),
            ),
            0.6,
        ),
        prompts=maybe(lambda: PromptMatch(names=(rnd.choice(PROMPTS)[0],)), 0.3),
        resources=maybe(
            lambda: ResourceMatch(patterns=(rnd.choice(["data://*", "users://*"]),)), 0.2
        ),
        resource_templates=maybe(lambda: TemplateMatch(uri_templates=(TEMPLATE,)), 0.2),
        actions=rnd.choice([("*",), ("*",), ("list",), ("call",), ("list", "get")]),
        conditions=tuple(_condition(rnd) for _ in range(rnd.choice([0, 0, 0, 0, 1, 2]))),
    )


def _specs(rnd: Random) -> list[PolicySpec]:
    combining = rnd.choice(["first_match", "deny_overrides"])
    return [
        PolicySpec(
            name=f"p{p}",
            rules=tuple(_rule(rnd, i) for i in range(rnd.randint(1, 6))),
            default_effect=rnd.choice(["allow", "deny"]),
            combining=combining,
        )
        for p in range(rnd.randint(1, 2))
    ]


def _principals(rnd: Random) -> list[Principal]:
    """A caller and callers that differ from it in one fact each: its user id, roles,
    agent id, authentication, or what only conditions read (claims, key id, method)."""
    base = Principal(
        rnd.choice(["alice", "bob"]), (rnd.choice(["user", "admin"]),),
        rnd.choice([None, "bot"]), {"level": 5}, True, "jwt", "k1",
    )  # fmt: skip
    return [
        base,
        replace(base, user_id="carol" if base.user_id == "alice" else "alice"),
        replace(base, roles=("admin",) if base.roles == ("user",) else ()),
        replace(base, agent_id=None if base.agent_id else "bot"),
        replace(base, authenticated=False),
        replace(base, claims={"level": 1}, key_id="k2", auth_method="api_key"),
        replace(base, claims={}, key_id=None),
    ]


@dataclass
class State:
    principal: Principal = field(default_factory=lambda: Principal("alice", ("user",)))
    now: datetime = CLOCKS[0]
    session: str | None = None


class _Authenticator:
    method = "test"

    def __init__(self, state: State) -> None:
        self.state = state

    async def authenticate(self, info: RequestInfo) -> Principal:
        return self.state.principal


def _server() -> tuple[FastMCP, list[Any], list[Any]]:
    mcp = FastMCP(SERVER)
    tools = []
    for name, tags, version, meta in TOOLS:
        tool = Tool.from_function(
            lambda a=0: "ok", name=name, tags=tags, version=version, meta=meta or None
        )
        tools.append(mcp.add_tool(tool))
    prompts = []
    for name, tags in PROMPTS:
        prompts.append(mcp.add_prompt(Prompt.from_function(lambda: "hi", name=name, tags=tags)))
    mcp.resource("data://a", tags={"safe"})(lambda: "a")
    mcp.resource(TEMPLATE, name="user", tags={"fs"})(lambda id: id)
    return mcp, tools, prompts


async def _unchecked(name: str, result: Any) -> None:
    return None


def _fresh(specs: Any, state: State, component: Any, action: str, method: str,
           args: Any = None) -> bool:  # fmt: skip
    """The decision of a policy set that has decided nothing before."""
    context = {"transport": "memory", "session_id": state.session, "server": SERVER}
    resource = component if isinstance(component, Resource) else to_resource(component)
    request = AccessRequest(
        state.principal, resource, action, args or {}, state.now, method, context
    )
    return PolicySet.from_specs(specs).decide(request).allowed


Expected = list[tuple[str, Principal, dict[str, bool]]]


async def _scenario(rnd: Random, state: State, store: Path | None = None) -> Expected:
    """Requests through a guard; what each should have shown or allowed, in order."""
    specs = _specs(rnd)
    mcp, tools, prompts = _server()
    ttl = rnd.choice([0, 60])
    mw = GuardMiddleware(
        specs,
        authenticator=_Authenticator(state),
        audit=store,
        telemetry=GuardTelemetry(registry=CollectorRegistry()) if store else False,
        lookup_ttl=ttl,
    )
    done: Expected = []
    mcp.add_middleware(mw)
    principals = _principals(rnd)
    async with Client(mcp) as client:
        # a call's result is not checked against a listing (which the client would make)
        client.session.validate_tool_result = _unchecked  # type: ignore[method-assign]
        for _ in range(24):
            roll = rnd.random()
            if roll < 0.1:
                FLAG["on"] = not FLAG["on"]
            elif roll < 0.15:
                specs = _specs(rnd)
                mw.reload_policies(specs)
            elif roll < 0.2:  # a draft decided next to the live set, then none again
                mw.set_shadow(_specs(rnd) if mw.shadow_set is None else None)
            elif roll < 0.25 and ttl == 0:  # a tool registered again, with other tags and meta
                i = rnd.randrange(len(tools))
                name, _, version, _ = TOOLS[i]
                mcp.local_provider.remove_tool(name)
                tools[i] = mcp.add_tool(
                    Tool.from_function(lambda a=0: "ok", name=name, version=version,
                                       tags=set(rnd.sample(["safe", "fs", "net"], 1)),
                                       meta={"owner": rnd.choice(["ops", "dev"])})
                )  # fmt: skip
            if rnd.random() < 0.5:
                state.principal = rnd.choice(principals)
            if rnd.random() < 0.4:
                state.now = rnd.choice(CLOCKS)
            live = list(mw.policy_set.policies)
            what = rnd.random()
            if what < 0.45:
                shown = {t.name for t in await client.list_tools()}
                answers = {t.name: _fresh(live, state, t, "list", "tools/list") for t in tools}
                assert shown == {name for name, yes in answers.items() if yes}, (live, state)
                done.append(("tools/list", state.principal, answers))
            elif what < 0.65:
                shown = {p.name for p in await client.list_prompts()}
                answers = {p.name: _fresh(live, state, p, "list", "prompts/list") for p in prompts}
                assert shown == {name for name, yes in answers.items() if yes}, (live, state)
                done.append(("prompts/list", state.principal, answers))
            elif what < 0.75:
                for method, listed, components in [
                    (
                        "resources/list",
                        {str(r.uri) for r in await client.list_resources()},
                        await mcp.list_resources(run_middleware=False),
                    ),
                    (
                        "resources/templates/list",
                        {t.uri_template for t in await client.list_resource_templates()},
                        await mcp.list_resource_templates(run_middleware=False),
                    ),
                ]:
                    answers = {
                        to_resource(c).uri: _fresh(live, state, c, "list", method)
                        for c in components
                    }
                    assert listed == {uri for uri, yes in answers.items() if yes}, (live, state)
                    names = {to_resource(c).uri: to_resource(c).name for c in components}
                    answers = {names[uri]: yes for uri, yes in answers.items()}
                    done.append((method, state.principal, answers))
            elif what < 0.85:
                uri = rnd.choice(URIS)
                component = await mcp.get_resource(uri) or await mcp.get_resource_template(uri)
                target = read_target(uri, component)
                args = component.matches(uri) if target.template else {}
                try:
                    await client.read_resource(uri)
                    allowed = True
                except Exception:  # denied: answered as a missing resource
                    allowed = False
                expected_read = _fresh(live, state, target, "read", "resources/read", args)
                assert allowed == expected_read, (live, state, uri)
                done.append(("resources/read", state.principal, {target.name: allowed}))
            else:
                tool = rnd.choice(tools)
                args = rnd.choice([{}, {"a": 1}, {"a": 2}])
                result = await client.call_tool_mcp(tool.name, args)
                allowed = not result.is_error
                expected_call = _fresh(live, state, tool, "call", "tools/call", args)
                assert allowed == expected_call, (live, state, tool.name, args)
                done.append(("tools/call", state.principal, {tool.name: allowed}))
    mw.close()
    return done


def _recorded(store: Path) -> Expected:
    """What the store says each request was: its method, caller and answers, in order."""
    with open_store(store) as db:
        rows = db.sql(
            "SELECT decision_id, method, user_id, roles, agent_id, auth_method, authenticated,"
            " key_id, claims, resource, allowed FROM decisions"
        ).fetchall()
    requests: dict[str, tuple[str, Principal, dict[str, bool]]] = {}
    for did, method, user, roles, agent, auth, known, key_id, claims, name, allowed in rows:
        claims = json.loads(claims) if claims else {}
        principal = Principal(user, tuple(roles), agent, claims, known, auth, key_id)
        _, answers = requests.setdefault(did.split(".")[0], (method, principal, {}))[1:]
        answers[name] = allowed
    return [requests[key] for key in sorted(requests)]


@pytest.fixture
def world(monkeypatch: pytest.MonkeyPatch) -> State:
    state = State()

    class _Clock(datetime):
        @classmethod
        def now(cls, tz: Any = None) -> Any:
            return state.now

    monkeypatch.setattr(guard._deciding, "datetime", _Clock)
    session_of = guard._deciding.session_of

    def _session(fctx: Any, rc: Any) -> Any:
        state.session = session_of(fctx, rc)
        return state.session

    monkeypatch.setattr(guard._deciding, "session_of", _session)
    register_condition("diff_flag", _flag)
    yield state
    unregister_condition("diff_flag")


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(rnd=st.randoms(use_true_random=True))
def test_reused_answers_agree_with_fresh_decisions(world: State, rnd: Random) -> None:
    FLAG["on"] = rnd.random() < 0.5
    asyncio.run(_scenario(rnd, world))


@settings(
    max_examples=max(EXAMPLES // 10, 2),
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(rnd=st.randoms(use_true_random=True))
def test_reused_answers_are_recorded_as_fresh_ones(
    world: State, rnd: Random, tmp_path_factory: pytest.TempPathFactory
) -> None:
    # the records (caller, answers) of listings given their earlier answers again are
    # those of listings decided afresh
    FLAG["on"] = rnd.random() < 0.5
    store = tmp_path_factory.mktemp("store") / "audit.duckdb"
    expected = asyncio.run(_scenario(rnd, world, store))
    assert _recorded(store) == expected
