"""A suite's verdicts are the live middleware's verdicts: one evaluator, one resource model.

mcp-auth-guard's `test` command built a different resource type from its runtime and so
reported answers the server did not give. Here every clock-independent case of the weather
suite is replayed against a real FastMCP server guarded by the same policy file.
"""

from __future__ import annotations

from pathlib import Path

from fastmcp import Client, FastMCP

from guard import GuardMiddleware
from guard.policy.model import Principal
from guard.policy.testing import SuiteCase, load_suite


def _server(policy: Path, principal: Principal) -> FastMCP:
    mcp = FastMCP("weather")

    @mcp.tool
    def get_weather(city: str = "Paris") -> str:
        return f"sunny in {city}"

    @mcp.tool
    def get_forecast(days: int = 1) -> str:
        return f"{days} days of sun"

    @mcp.tool
    def delete_city(city: str = "Atlantis") -> str:
        return f"deleted {city}"

    @mcp.tool
    def launch_rocket() -> str:
        return "liftoff"

    @mcp.resource("weather://cities")
    def cities() -> str:
        return "Paris, Oslo"

    mcp.add_middleware(GuardMiddleware(str(policy), principal=principal, audit=None))
    return mcp


async def _allowed_live(mcp: FastMCP, case: SuiteCase) -> bool:
    request = case.request
    async with Client(mcp) as client:
        try:
            if request.action == "list":  # shown in the caller's listing
                kind = request.resource.kind
                listed = await (client.list_tools() if kind == "tool" else client.list_resources())
                return any(getattr(c, "name", None) == request.resource.name for c in listed)
            if request.resource.kind == "tool":
                await client.call_tool(request.resource.name, dict(request.args))
            else:
                await client.read_resource(str(request.resource.uri))
        except Exception:
            return False
    return True


async def test_weather_suite_agrees_with_the_guarded_server(examples: Path) -> None:
    suite = load_suite(examples / "tests" / "weather.test.yaml")
    result = suite.run()
    assert result.passed, result.report()
    verdicts: list[bool] = []
    for outcome in result.results:
        case = outcome.case
        if "intern" in case.request.principal.roles:  # office-hours rule reads the real clock live
            continue
        mcp = _server(examples / "weather.yaml", case.request.principal)
        live = await _allowed_live(mcp, case)
        assert live is outcome.decision.allowed, case.name
        verdicts.append(live)
    assert len(verdicts) >= 7 and set(verdicts) == {True, False}


KEYED = """
name: keys
default_effect: deny
rules:
  - name: the_ci_key
    effect: allow
    conditions:
      - {field: principal.key_id, operator: equals, value: 3f9a0c1d2e4b}
"""


async def test_a_case_names_the_key_a_live_caller_used(tmp_path: Path) -> None:
    """`principal.key_id` is a field policies decide on (an API key's fingerprint), but a
    case's principal could not carry one (`unknown key 'key_id'`): a rule on it could be
    decided live and never in a suite or `explain --request`."""
    policy = tmp_path / "keys.yaml"
    policy.write_text(KEYED)
    caller = Principal("ci", auth_method="api_key", key_id="3f9a0c1d2e4b")
    mcp = _server(policy, caller)
    async with Client(mcp) as client:
        await client.call_tool("launch_rocket", {})  # allowed live
    suite = tmp_path / "keys.test.yaml"
    suite.write_text(
        "policies: keys.yaml\ncases:\n"
        "  - name: the ci key\n"
        "    principal: {user_id: ci, auth_method: api_key, key_id: 3f9a0c1d2e4b}\n"
        "    tool: launch_rocket\n    expect: {allowed: true, rule: the_ci_key}\n"
        "  - name: another key\n"
        "    principal: {user_id: ci, auth_method: api_key, key_id: '000000000000'}\n"
        "    tool: launch_rocket\n    expect: {allowed: false, reason: default}\n"
    )
    result = load_suite(suite).run()
    assert result.passed, result.report()
