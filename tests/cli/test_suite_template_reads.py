"""A suite's read through a resource template carries the method the server gives it:
`resources/read`. Found in review: a suite built `resources/templates/read` (a method MCP
does not have), so a rule on `request.method` decided a suite case otherwise than the
live read it stands for."""

from __future__ import annotations

from pathlib import Path

from fastmcp import Client, FastMCP

from guard import GuardMiddleware
from guard.policy.model import Principal
from guard.policy.testing import load_suite

POLICY = """
name: profiles
default_effect: deny
rules:
  - name: reads_only
    effect: allow
    resource_templates: {uri_templates: ["users://{id}/profile"]}
    conditions:
      - {field: request.method, operator: equals, value: resources/read}
"""


async def test_a_template_read_case_decides_as_the_live_read(tmp_path: Path) -> None:
    policy = tmp_path / "profiles.yaml"
    policy.write_text(POLICY)
    mcp = FastMCP("profiles")

    @mcp.resource("users://{id}/profile")
    def profile(id: str) -> str:
        return f"profile of {id}"

    mcp.add_middleware(GuardMiddleware(policy, principal=Principal("alice"), audit=None))
    async with Client(mcp) as client:
        contents = await client.read_resource("users://7/profile")
    assert contents[0].text == "profile of 7"  # allowed live

    suite = tmp_path / "profiles.test.yaml"
    suite.write_text(
        f"policies: {policy}\n"
        "cases:\n"
        "  - name: read through the template\n"
        "    principal: {user_id: alice}\n"
        "    resource: {kind: resource_template, name: 'users://{id}/profile'}\n"
        "    expect: allow\n"
    )
    result = load_suite(suite).run()
    assert result.passed, result.report()
