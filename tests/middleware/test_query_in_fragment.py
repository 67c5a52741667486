"""Found in review: a query written inside the fragment (`reports://hr#?scope=public`) is
read two ways by FastMCP. A template's own function gets the URI without its fragment
(`scope` left at its default, `private`), while a mount or proxy forwards the text after
the fragment's `?` as the query (`scope=public`). The guard decided on the forwarded
form, so an allow rule on `scope: public` let a local template serve its private
report. Such a read names no one resource: it is refused."""

from __future__ import annotations

from typing import Any

import pytest
from fastmcp import Client, FastMCP
from fastmcp.server import create_proxy
from mcp.shared.exceptions import MCPError

from guard import GuardMiddleware, Principal

POLICY = """
name: p
default_effect: deny
rules:
  - name: public-only
    effect: allow
    resource_templates: {names: [reports]}
    conditions: [{field: tool.args.scope, operator: equals, value: public}]
"""


def _backend() -> FastMCP:
    app = FastMCP("reports")

    @app.resource("reports://{team}{?scope}")
    def reports(team: str, scope: str = "private") -> str:
        return f"{scope} report of {team}"

    return app


def _front(how: str) -> FastMCP:
    if how == "local":
        return _backend()
    if how == "proxy":
        return create_proxy(_backend())
    front = FastMCP("front")
    front.mount(_backend())
    return front


@pytest.mark.parametrize("how", ["local", "mounted", "proxy"])
async def test_a_query_inside_the_fragment_reads_nothing(how: str) -> None:
    app = _front(how)
    app.add_middleware(GuardMiddleware(POLICY, principal=Principal("bob"), audit=None,
                                       telemetry=False))  # fmt: skip
    async with Client(app) as client:
        read: Any = await client.session.read_resource("reports://hr?scope=public#top")
        assert read.contents[0].text == "public report of hr"
        for uri in ["reports://hr#?scope=public", "reports://hr?x=1#&scope=public"]:
            with pytest.raises(MCPError, match="not found"):
                await client.session.read_resource(uri)
