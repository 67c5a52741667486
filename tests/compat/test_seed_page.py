"""Every policy snippet on mcp-auth-guard's page runs here with `mcp_auth_guard` -> `guard`.

Snippets are kept verbatim where they are complete; the page's YAML fragments are wrapped
into whole policies. Each test asserts decisions, not just that the code ran.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from seed_page import SEED_POLICY

from guard.errors import PolicyError
from guard.policy import PolicyCondition, PolicyEngine, PolicyLoader, policy, rule
from guard.policy.conditions import register_condition, unregister_condition
from guard.schemas import AuthContext, DecisionReason, ResourceContext, ToolResource

PAGE_POLICY = SEED_POLICY

WEATHER_POLICY = """\
name: weather_policy
default_effect: deny
rules:
  - name: user_weather
    effect: allow
    agents: {roles: [user]}
    tools: {names: [get_weather]}
    actions: [call]
"""


def _decide(
    engine: PolicyEngine,
    roles: list[str],
    tool: str,
    action: str = "call",
    resource_type: str = "tool",
    args: dict[str, Any] | None = None,
    user: str = "alice",
) -> tuple[bool, str | None]:
    auth = AuthContext(user_id=user, roles=roles, authenticated=True)
    res = ResourceContext(
        resource_type=resource_type,
        resource=ToolResource(name=tool, arguments=args or {}),
        action=action,
        method=f"{resource_type.rstrip('s')}s/{action}",
    )
    d = engine.evaluate_sync(auth, res)
    return d.allowed, d.matched_rule


@pytest.fixture
def page_policy(tmp_path: Path) -> Path:
    path = tmp_path / "policies.yaml"
    path.write_text(PAGE_POLICY)
    return path


@pytest.mark.parametrize(
    "roles,tool,action,expected",
    [
        (["admin"], "sensitive_operation", "call", (True, "admin_access")),
        (["admin"], "anything", "list", (True, "admin_access")),
        (["user"], "safe_tool", "call", (True, "user_limited_access")),
        (["user"], "read_only_tool", "list", (True, "user_limited_access")),
        (["user"], "sensitive_operation", "call", (False, None)),
        (["admin"], "sensitive_operation", "get", (False, None)),  # action not listed
        ([], "safe_tool", "call", (False, None)),
    ],
)
def test_page_policy_file_decides_as_described(
    page_policy: Path, roles: list[str], tool: str, action: str, expected: tuple[bool, str | None]
) -> None:
    engine = PolicyEngine([PolicyLoader.load_from_file(page_policy)])
    assert _decide(engine, roles, tool, action) == expected
    # the plural spelling mcp-auth-guard's middleware used decides the same
    assert _decide(engine, roles, tool, action, resource_type="tools") == expected


async def test_policy_testing_snippet_verbatim(tmp_path: Path) -> None:
    (tmp_path / "policies.yaml").write_text(WEATHER_POLICY)

    # --- the page's snippet, imports changed ---
    from guard.policy import PolicyEngine, PolicyLoader
    from guard.schemas import AuthContext, ResourceContext, ToolResource

    # Load and test
    policy = PolicyLoader.load_from_file("policies.yaml")
    engine = PolicyEngine([policy])

    # Create test context
    auth_ctx = AuthContext(user_id="alice", roles=["user"], authenticated=True)
    resource_ctx = ResourceContext(
        resource_type="tool",
        resource=ToolResource(name="get_weather"),
        action="call",
        method="tools/call",
    )

    # Evaluate
    decision = await engine.evaluate(auth_ctx, resource_ctx)
    print(f"Allowed: {decision.allowed}, Reason: {decision.reason}")
    # --- end of snippet ---

    assert decision.allowed is True
    assert decision.reason == DecisionReason.RULE_MATCHED
    assert decision.matched_rule == "user_weather"
    intern = AuthContext(user_id="ivan", roles=["intern"], authenticated=True)
    denied = await engine.evaluate(intern, resource_ctx)
    assert (denied.allowed, denied.reason) == (False, DecisionReason.DEFAULT_EFFECT)


def test_mcp_auth_guard_itself_gets_the_singular_resource_type_wrong(tmp_path: Path) -> None:
    # why the snippet above is worth testing: the seed never matches a tool rule for "tool"
    import mcp_auth_guard.policy as seed_policy
    import mcp_auth_guard.schemas as seed_schemas

    (tmp_path / "p.yaml").write_text(WEATHER_POLICY)
    loaded = seed_policy.PolicyLoader.load_from_file(tmp_path / "p.yaml")
    engine = seed_policy.PolicyEngine([loaded])
    auth = seed_schemas.AuthContext(user_id="alice", roles=["user"], authenticated=True)

    def allowed(resource_type: str) -> bool:
        res = seed_schemas.ResourceContext(
            resource_type=resource_type,
            resource=seed_schemas.ToolResource(name="get_weather"),
            action="call",
            method="tools/call",
        )
        return bool(asyncio.run(engine.evaluate(auth, res)).allowed)

    assert allowed("tools") is True
    assert allowed("tool") is False


async def test_unauthenticated_context_is_denied_before_any_rule(page_policy: Path) -> None:
    engine = PolicyEngine([PolicyLoader.load_from_file(page_policy)])
    d = await engine.evaluate(
        AuthContext(user_id="root", roles=["admin"]),  # authenticated defaults to False
        ResourceContext(
            resource_type="tool",
            resource=ToolResource(name="safe_tool"),
            action="call",
            method="tools/call",
        ),
    )
    assert (d.allowed, d.reason, d.matched_rule) == (
        False,
        DecisionReason.AUTHENTICATION_FAILED,
        None,
    )


def test_builder_snippet_decides() -> None:
    # the page's builder snippet, imports changed
    my_policy = (
        policy("secure_service")
        .with_description("Security policy for my service")
        .deny_by_default()
        .add_rule(rule("admin_access").for_roles("admin").for_tool_patterns("*").allow())
        .add_rule(
            rule("user_read_only")
            .for_roles("user")
            .for_tool_patterns("get_*", "list_*")
            .when_equals("tool.args.readonly", True)
            .allow()
        )
        .build()
    )

    engine = PolicyEngine([my_policy])
    assert _decide(engine, ["admin"], "drop_db") == (True, "admin_access")
    assert _decide(engine, ["user"], "get_x", args={"readonly": True}) == (True, "user_read_only")
    assert _decide(engine, ["user"], "get_x", args={"readonly": False}) == (False, None)
    assert _decide(engine, ["user"], "get_x") == (False, None)  # no such argument
    assert _decide(engine, ["user"], "drop_db", args={"readonly": True}) == (False, None)
    assert engine.list_policies() == ["secure_service"]


def test_page_yaml_fragments_load_and_decide() -> None:
    page_fragments = {
        "name": "fragments",
        "rules": [
            {
                "name": "agents",
                "effect": "allow",
                "agents": {
                    "user_id": ["alice", "bob"],
                    "roles": ["admin", "developer"],
                    "agent_id": ["claude", "gpt-4"],
                    "patterns": ["admin_*", "*_service"],
                },
                "actions": ["list"],
            },
            {
                "name": "tools",
                "effect": "allow",
                "tools": {
                    "names": ["get_weather", "send_email"],
                    "patterns": ["get_*", "*_admin"],
                    "namespaces": ["weather", "admin"],
                    "tags": ["safe", "public"],
                },
                "actions": ["call"],
            },
            {
                "name": "conditions",
                "effect": "allow",
                "actions": ["get"],
                "conditions": [
                    {"field": "tool.args.time", "operator": "equals", "value": "night"},
                    {"field": "user.roles", "operator": "in", "value": ["admin", "moderator"]},
                    {"field": "tool.name", "operator": "regex", "value": "^admin_.*"},
                ],
            },
        ],
    }
    engine = PolicyEngine([PolicyLoader.load_from_dict(page_fragments)])

    def tool(name: str, **kw: Any) -> ResourceContext:
        return ResourceContext(
            resource_type="tool",
            resource=ToolResource(name=name, **kw),
            action="call",
            method="tools/call",
        )

    agent = AuthContext(user_id="alice", roles=["developer"], agent_id="claude", authenticated=True)
    # every agent criterion must hold: user alice matches user_id but not `admin_*`/`*_service`
    listing = ResourceContext(
        resource_type="tool", resource=ToolResource(name="x"), action="list", method="tools/list"
    )
    assert engine.evaluate_sync(agent, listing).allowed is False
    agent.user_id = "admin_alice"  # now matches patterns, but not user_id
    assert engine.evaluate_sync(agent, listing).allowed is False

    ok = tool("get_weather", namespace="weather", tags=["safe"])
    assert engine.evaluate_sync(agent, ok).matched_rule == "tools"
    assert (
        engine.evaluate_sync(agent, tool("get_weather", namespace="other", tags=["safe"])).allowed
        is False
    )
    assert engine.evaluate_sync(agent, tool("get_weather", namespace="weather")).allowed is False

    # `user.roles in [...]` compares a list with strings: never true in mcp-auth-guard; here a
    # type mismatch, so this allow rule does not apply (a deny rule would: fail closed)
    cond = ResourceContext(
        resource_type="prompt",
        resource=ToolResource(name="admin_x", arguments={"time": "night"}),
        action="get",
        method="prompts/get",
    )
    assert engine.evaluate_sync(agent, cond).allowed is False


class TimeBasedCondition(PolicyCondition):
    def evaluate(self, context):  # type: ignore[no-untyped-def]  # verbatim from the page
        current_hour = datetime.now().hour
        return 9 <= current_hour <= 17  # Business hours only


class ClockHours(PolicyCondition):
    """The same idea, on the decision's own clock, so a recorded decision replays exactly."""

    name = "clock_business_hours"

    def evaluate(self, context: Any) -> bool:
        return 9 <= context["request"]["time"].hour <= 17


@pytest.fixture
def registered() -> Any:
    names: list[str] = []
    yield names
    for n in names:
        unregister_condition(n)


def test_custom_condition_snippet_registered_by_name(registered: list[str]) -> None:
    register_condition("business_hours", TimeBasedCondition())
    registered.append("business_hours")
    engine = PolicyEngine(
        [
            PolicyLoader.load_from_string("""
name: office
rules:
  - name: office_hours
    effect: allow
    conditions: [{custom: business_hours}]
""")
        ]
    )
    before = datetime.now().hour
    allowed, _ = _decide(engine, ["user"], "t")
    if datetime.now().hour == before:  # the clock did not cross an hour meanwhile
        assert allowed is (9 <= before <= 17)


@pytest.mark.parametrize("hour,expected", [(8, False), (9, True), (17, True), (18, False)])
def test_custom_condition_on_the_request_clock(
    registered: list[str], hour: int, expected: bool
) -> None:
    assert ClockHours().register() == "clock_business_hours"
    registered.append("clock_business_hours")
    engine = PolicyEngine(
        [
            policy("office")
            .add_rule(rule("office_hours").when_custom("clock_business_hours").allow())
            .build()
        ]
    )
    when = datetime(2026, 3, 2, hour, 30, tzinfo=UTC).timestamp()
    res = ResourceContext(
        resource_type="tool",
        resource=ToolResource(name="t"),
        action="call",
        method="tools/call",
        timestamp=when,
    )
    auth = AuthContext(user_id="a", roles=["user"], authenticated=True)
    assert engine.evaluate_sync(auth, res).allowed is expected


def test_custom_condition_object_registered_by_class_name(registered: list[str]) -> None:
    spec = rule("r").when_custom(TimeBasedCondition()).to_spec()
    registered.append("time_based_condition")
    assert spec.conditions[0].name == "time_based_condition"  # type: ignore[union-attr]


def test_custom_condition_that_raises_fails_closed(registered: list[str]) -> None:
    class Broken(PolicyCondition):
        name = "broken_condition"

        def evaluate(self, context: Any) -> bool:
            raise RuntimeError("boom")

    Broken().register()
    registered.append("broken_condition")
    engine = PolicyEngine(
        [
            policy("p")
            .allow_by_default()
            .add_rule(rule("deny_when").when_custom("broken_condition").deny())
            .add_rule(rule("allow_when").when_custom("broken_condition").allow().with_priority(50))
            .build()
        ]
    )
    # the deny rule that cannot be evaluated applies: denied, not skipped
    assert _decide(engine, ["user"], "t") == (False, "deny_when")


async def test_performance_monitoring_snippet(page_policy: Path) -> None:
    engine = PolicyEngine([PolicyLoader.load_from_file(page_policy)])
    auth_ctx = AuthContext(user_id="alice", roles=["user"], authenticated=True)
    resource_ctx = ResourceContext(
        resource_type="tool",
        resource=ToolResource(name="safe_tool"),
        action="call",
        method="tools/call",
    )

    # Built-in performance metrics
    decision = await engine.evaluate(auth_ctx, resource_ctx)
    print(f"Evaluation took: {decision.evaluation_time_ms}ms")
    print(f"Rules evaluated: {decision.evaluated_rules}")

    assert decision.evaluation_time_ms is not None and 0 < decision.evaluation_time_ms < 1000
    assert decision.evaluated_rules >= 1
    assert decision.decision is not None and decision.decision.policy_hash


def test_engine_policy_management(page_policy: Path) -> None:
    engine = PolicyEngine([PolicyLoader.load_from_file(page_policy)])
    assert _decide(engine, ["intern"], "t") == (False, None)
    engine.add_policy(
        policy("interns")
        .add_rule(rule("intern_t").for_roles("intern").for_tools("t").allow())
        .build()
    )
    assert engine.list_policies() == ["my_service_policy", "interns"]
    assert _decide(engine, ["intern"], "t") == (True, "intern_t")
    assert engine.get_policy("interns") is not None and engine.get_policy("nope") is None
    engine.add_policy(
        policy("interns")
        .add_rule(rule("intern_t2").for_roles("intern").for_tools("t").deny())
        .build()
    )
    assert engine.list_policies() == ["my_service_policy", "interns"]  # replaced, not doubled
    assert _decide(engine, ["intern"], "t") == (False, "intern_t2")
    assert engine.remove_policy("interns") is True
    assert engine.remove_policy("interns") is False
    assert _decide(engine, ["intern"], "t") == (False, None)


def test_loader_errors(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        PolicyLoader.load_from_file(tmp_path / "missing.yaml")
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "good.yaml").write_text(PAGE_POLICY)
    (tmp_path / "d" / "bad.yaml").write_text("name: bad\nrules:\n  - name: r\n    efect: allow\n")
    # mcp-auth-guard skipped the bad file silently; here it is an error naming it
    with pytest.raises(PolicyError, match=r"bad\.yaml"):
        PolicyLoader.load_from_directory(tmp_path / "d")
    assert PolicyLoader.validate_policy_file(tmp_path / "d" / "bad.yaml") is False
    assert PolicyLoader.validate_policy_file(tmp_path / "d" / "good.yaml") is True


def test_loader_round_trip_through_save(tmp_path: Path, page_policy: Path) -> None:
    loaded = PolicyLoader.load_from_file(page_policy)
    assert loaded.to_spec().source.endswith("policies.yaml")
    PolicyLoader.save_to_file(loaded, tmp_path / "out" / "copy.yaml")
    again = PolicyLoader.load_from_file(tmp_path / "out" / "copy.yaml")
    assert again.rules == PolicyLoader.load_from_string(PAGE_POLICY).rules
    assert [r.name for r in PolicyLoader.load_from_directory(tmp_path / "out")[0].rules] == [
        "admin_access",
        "user_limited_access",
    ]


async def test_dynamic_policy_updates_snippet_on_a_real_server(tmp_path: Path) -> None:
    from fastmcp import Client, FastMCP
    from fastmcp.exceptions import ToolError

    from guard import GuardMiddleware, Principal

    mcp = FastMCP("reports")

    @mcp.tool
    def report(x: str) -> str:
        return f"report {x}"

    (tmp_path / "base.yaml").write_text("name: base\ndefault_effect: deny\nrules: []\n")
    middleware = GuardMiddleware(
        PolicyLoader.load_from_file(tmp_path / "base.yaml"),
        principal=Principal("alice", ("user",)),
        audit=None,
        telemetry=False,
    )
    mcp.add_middleware(middleware)
    new_policy = (
        policy("old_policy_name")
        .add_rule(rule("users_report").for_roles("user").for_tools("report").allow())
        .build()
    )
    (tmp_path / "updated_policies").mkdir()
    (tmp_path / "updated_policies" / "p.yaml").write_text(
        "name: updated\nrules:\n  - {name: all_users, effect: allow, agents: {roles: [user]}}\n"
    )

    async with Client(mcp) as client:
        with pytest.raises(ToolError):
            await client.call_tool("report", {"x": "a"})

        # Update policies at runtime (the page's snippet)
        middleware.add_policy(new_policy)
        assert (await client.call_tool("report", {"x": "a"})).data == "report a"
        middleware.remove_policy("old_policy_name")
        with pytest.raises(ToolError):
            await client.call_tool("report", {"x": "b"})
        middleware.reload_policies(tmp_path / "updated_policies/")
        assert (await client.call_tool("report", {"x": "c"})).data == "report c"
