"""Every MCP method through a real in-memory `Client`: allowed, denied, listed, hidden."""

from __future__ import annotations

from typing import Any

import pytest
from fastmcp import Client, FastMCP
from fastmcp.exceptions import ToolError
from mcp.shared.exceptions import MCPError
from mw_support import POLICY, Recorder, demo_server
from servers import rpc_meta

from guard import GuardMiddleware, Principal

ALICE = Principal("alice", roles=("user",), auth_method="test")
ROOT = Principal("root", roles=("admin",), auth_method="test")


def guarded(recorder: Recorder, principal: Principal = ALICE, **kwargs: Any) -> FastMCP[Any]:
    mcp = demo_server()
    kwargs.setdefault("audit", None)
    mcp.add_middleware(GuardMiddleware(POLICY, principal=principal, telemetry=recorder, **kwargs))
    return mcp


async def test_allowed_tool_call_runs(recorder: Recorder) -> None:
    async with Client(guarded(recorder)) as client:
        assert (await client.call_tool("echo", {"text": "hi"})).data == "echo: hi"
    (event,) = [e for e in recorder.events if e.method == "tools/call"]
    assert event.decision.allowed and event.decision.rule == "user_safe_tools"
    assert event.request.action == "call" and event.request.args == {"text": "hi"}
    assert event.request.resource.tags == frozenset({"safe"})
    assert event.transport == "memory" and event.server == "demo"
    assert event.request.principal.user_id == "alice"
    assert event.decision.policy_hash and event.decision_id


async def test_denied_tool_is_indistinguishable_from_missing(recorder: Recorder) -> None:
    async with Client(guarded(recorder)) as client:
        with pytest.raises(ToolError) as denied:
            await client.call_tool("drop_table", {"name": "users"})
        with pytest.raises(ToolError) as missing:
            await client.call_tool("no_such_tool", {})
    assert str(denied.value) == "Unknown tool: 'drop_table'"
    assert str(missing.value) == "Unknown tool: 'no_such_tool'"
    calls = [e for e in recorder.events if e.method == "tools/call"]
    assert [e.decision.allowed for e in calls] == [False, False]  # both decided and observed


async def test_admin_may_call_what_user_may_not(recorder: Recorder) -> None:
    async with Client(guarded(recorder, ROOT)) as client:
        assert (await client.call_tool("drop_table", {"name": "t"})).data == "dropped t"


async def test_lists_show_only_permitted_components(recorder: Recorder) -> None:
    async with Client(guarded(recorder)) as client:
        tools = sorted(t.name for t in await client.list_tools())
        resources = [str(r.uri) for r in await client.list_resources()]
        templates = [t.name for t in await client.list_resource_templates()]
        prompts = [p.name for p in await client.list_prompts()]
    assert tools == ["echo", "fail"]
    assert resources == ["data://public"]
    assert templates == ["profile"]
    assert prompts == ["greet"]
    listed = [e for e in recorder.events if e.request.action == "list"]
    # one decision per component, hidden ones included
    assert {(e.method, e.request.resource.name) for e in listed} >= {
        ("tools/list", "drop_table"),
        ("resources/list", "secret"),
        ("resources/templates/list", "payroll"),
        ("prompts/list", "admin_prompt"),
    }
    by_list = {e.method: e.request.time for e in listed}
    assert all(t is not None and t.tzinfo is not None for t in by_list.values())


async def test_one_clock_value_per_list_request(recorder: Recorder) -> None:
    async with Client(guarded(recorder)) as client:
        await client.list_tools()
    times = {e.request.time for e in recorder.events if e.method == "tools/list"}
    assert len(times) == 1


async def test_resource_reads_concrete_and_templated(recorder: Recorder) -> None:
    async with Client(guarded(recorder)) as client:
        assert (await client.read_resource("data://public"))[0].text == "public"  # type: ignore[union-attr]
        assert (await client.read_resource("users://7/profile"))[0].text == "profile 7"  # type: ignore[union-attr]
        with pytest.raises(MCPError) as denied:
            await client.read_resource("data://secret")
        with pytest.raises(MCPError) as missing:
            await client.read_resource("data://nothing")
        with pytest.raises(MCPError, match="Resource not found"):
            await client.read_resource("users://7/payroll")
    assert denied.value.error.message == "Resource not found: 'data://secret'"
    assert denied.value.error.code == missing.value.error.code
    templated = next(e for e in recorder.events if e.request.resource.uri == "users://7/profile")
    assert templated.request.resource.template == "users://{uid}/profile"
    assert templated.request.args == {"uid": "7"} and templated.decision.allowed


async def test_prompt_get_allowed_and_denied(recorder: Recorder) -> None:
    async with Client(guarded(recorder)) as client:
        result = await client.get_prompt("greet", {"name": "Ada"})
        assert "Hello Ada" in result.messages[0].content.text  # type: ignore[union-attr]
        with pytest.raises(MCPError) as denied:
            await client.get_prompt("admin_prompt", {"topic": "x"})
        with pytest.raises(MCPError) as missing:
            await client.get_prompt("nothing")
    assert denied.value.error.message == "Unknown prompt: 'admin_prompt'"
    assert missing.value.error.message == "Unknown prompt: 'nothing'"
    assert denied.value.error.code == missing.value.error.code


async def test_completion_does_not_leak_denied_prompts_or_templates(recorder: Recorder) -> None:
    async with Client(guarded(recorder)) as client:
        allowed = await client.complete(
            {"type": "ref/prompt", "name": "greet"}, {"name": "name", "value": "a"}
        )
        denied = await client.complete(
            {"type": "ref/prompt", "name": "admin_prompt"}, {"name": "topic", "value": "a"}
        )
        missing = await client.complete(
            {"type": "ref/prompt", "name": "nothing"}, {"name": "topic", "value": "a"}
        )
        template = await client.complete(
            {"type": "ref/resource", "uri": "users://{uid}/payroll"}, {"name": "uid", "value": "1"}
        )
    assert allowed.values == ["alpha", "beta"]
    assert denied.values == [] and denied == missing
    assert template.values == []
    completions = [e for e in recorder.events if e.method == "completion/complete"]
    # the unknown prompt is decided and recorded too, as an unknown component
    assert [e.decision.allowed for e in completions] == [True, False, False, False]
    assert not completions[2].request.resource.found


async def test_completion_by_a_caller_who_fails_authentication_is_denied_and_recorded(
    recorder: Recorder,
) -> None:
    """Every request is decided once its caller is known, whatever it names: a completion
    naming no component was passed on undecided, so a refused caller left no record."""
    from guard.errors import AuthenticationError

    class Refuse:
        async def authenticate(self, info: Any) -> Principal:
            raise AuthenticationError("invalid_api_key", "no such key")

    mcp = demo_server()
    mcp.add_middleware(GuardMiddleware(POLICY, authenticator=Refuse(), telemetry=recorder,
                                       audit=None))  # fmt: skip
    async with Client(mcp) as client:
        for name in ("greet", "nothing"):
            done = await client.complete(
                {"type": "ref/prompt", "name": name}, {"name": "name", "value": "a"}
            )
            assert done.values == []
    completions = [e for e in recorder.events if e.method == "completion/complete"]
    assert [(e.decision.allowed, e.decision.reason) for e in completions] == [
        (False, "invalid_api_key"), (False, "invalid_api_key"),
    ]  # fmt: skip


# completion/complete runs the server's completion handler for a denied prompt and
# only then empties the answer: a handler error reaches the caller, where an unknown
# prompt completes to nothing (and the handler never runs).
async def test_completion_of_a_denied_prompt_does_not_run_the_handler(
    recorder: Recorder,
) -> None:
    mcp: FastMCP[Any] = FastMCP("c")

    @mcp.prompt
    def greet(name: str) -> str:
        return name

    @mcp.prompt
    def admin_prompt(topic: str) -> str:
        return topic

    ran: list[str] = []

    @mcp.completion
    def complete(ref: Any, argument: Any, context: Any) -> list[str]:
        ran.append(ref.name)
        if argument.name == "topic":
            raise ValueError("admin topics unavailable")
        return ["a"]

    mcp.add_middleware(GuardMiddleware(POLICY, principal=ALICE, audit=None, telemetry=recorder))
    async with Client(mcp) as client:
        unknown = await client.complete(
            {"type": "ref/prompt", "name": "no_such_prompt"}, {"name": "topic", "value": "x"}
        )
        denied = await client.complete(  # observed: MCPError "Internal server error"
            {"type": "ref/prompt", "name": "admin_prompt"}, {"name": "topic", "value": "x"}
        )
    assert denied == unknown
    assert ran == []


async def test_explicit_denials_name_the_rule(recorder: Recorder) -> None:
    async with Client(guarded(recorder, explicit_denials=True)) as client:
        with pytest.raises(ToolError, match=r"denied by default of policy 'demo' \(default\)"):
            await client.call_tool("drop_table", {"name": "users"})
        with pytest.raises(MCPError, match="denied"):
            await client.get_prompt("admin_prompt", {"topic": "x"})


ARG_POLICY = """
name: args
default_effect: deny
rules:
  - name: no_prod
    effect: deny
    tools: {names: [deploy]}
    actions: [call]
    conditions:
      - {field: tool.args.env, operator: equals, value: prod}
  - name: tagged
    effect: allow
    tools: {tags: [ops]}
    actions: [list, call]
"""


async def test_tags_and_arguments_reach_conditions(recorder: Recorder) -> None:
    mcp: FastMCP[Any] = FastMCP("ops")

    @mcp.tool(tags={"ops"})
    def deploy(env: str) -> str:
        return f"deployed to {env}"

    @mcp.tool
    def untagged() -> str:
        return "x"

    mcp.add_middleware(GuardMiddleware(ARG_POLICY, principal=ALICE, audit=None, telemetry=recorder))
    async with Client(mcp) as client:
        assert [t.name for t in await client.list_tools()] == ["deploy"]
        assert (await client.call_tool("deploy", {"env": "staging"})).data == "deployed to staging"
        with pytest.raises(ToolError, match="Unknown tool"):
            await client.call_tool("deploy", {"env": "prod"})
    prod = [e for e in recorder.events if e.request.args.get("env") == "prod"]
    assert prod[0].decision.rule == "no_prod"


async def test_no_authenticator_no_principal_is_anonymous_no_auth(recorder: Recorder) -> None:
    mcp = demo_server()
    policy = "name: open\ndefault_effect: deny\nrules:\n  - {name: all, effect: allow}\n"
    mcp.add_middleware(GuardMiddleware(policy, audit=None, telemetry=recorder))
    async with Client(mcp) as client:
        assert (await client.call_tool("drop_table", {"name": "t"})).data == "dropped t"
    principal = recorder.events[-1].request.principal
    assert principal.user_id == "anonymous" and principal.auth_method == "none"


async def test_component_lookups_see_runtime_changes(recorder: Recorder) -> None:
    mcp = demo_server()
    mcp.add_middleware(
        GuardMiddleware(POLICY, principal=ALICE, audit=None, telemetry=recorder, lookup_ttl=0)
    )
    async with Client(mcp) as client:
        with pytest.raises(ToolError):
            await client.call_tool("late", {})

        @mcp.tool(name="late", tags={"safe"})
        def late_v1() -> str:
            return "v1"

        assert (await client.call_tool("late", {})).data == "v1"  # found at once
        mcp.local_provider.remove_tool("late")

        @mcp.tool(name="late", tags={"admin"})
        def late_v2() -> str:
            return "v2"

        with pytest.raises(ToolError, match="Unknown tool"):  # decided on its new tags
            await client.call_tool("late", {})


async def test_malformed_requests_fail_exactly_as_without_the_guard(recorder: Recorder) -> None:
    meta = rpc_meta()
    bad = [{"name": 5, "_meta": meta}, {"name": "echo", "arguments": "x", "_meta": meta}]

    async def errors(mcp: FastMCP[Any]) -> list[str]:
        out = []
        async with Client(mcp) as client:
            for params in bad:  # raw, so the client cannot validate them away
                with pytest.raises(MCPError) as failed:
                    await client.session._dispatcher.send_raw_request("tools/call", params, None)
                out.append(f"{failed.value.error.code} {failed.value.error.message}")
        return out

    assert await errors(guarded(recorder, ROOT)) == await errors(demo_server())
    assert recorder.events == []  # nothing reached a decision
