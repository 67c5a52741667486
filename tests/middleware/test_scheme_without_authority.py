"""Found in review: `resources.schemes` took a URI's scheme to be the text before `://`,
so a URI without an authority (`urn:acme:payroll`, `mailto:ceo@acme.test`), which
FastMCP registers and serves, had no scheme at all: a deny rule on `schemes: [urn]`
never matched it, and the resource was read. A URI's scheme is the text before its first
`:` (RFC 3986), whether `//` follows or not."""

from __future__ import annotations

from typing import Any

import pytest
from fastmcp import Client, FastMCP
from mcp.shared.exceptions import MCPError

from guard import AccessRequest, GuardMiddleware, Principal, Resource, load_policies

POLICY = """
name: p
default_effect: allow
rules:
  - name: no-urn
    effect: deny
    resources: {schemes: [urn, mailto]}
"""


def _server() -> FastMCP:
    app = FastMCP("s")

    @app.resource("urn:acme:payroll")
    def payroll() -> str:
        return "PAYROLL"

    @app.resource("urn:acme:user:{uid}")
    def user(uid: str) -> str:
        return f"user {uid}"

    @app.resource("data://public")
    def public() -> str:
        return "PUBLIC"

    return app


@pytest.mark.parametrize("uri", ["urn:acme:payroll", "urn:acme:user:7"])
async def test_a_scheme_deny_rule_refuses_a_uri_without_an_authority(uri: str) -> None:
    app = _server()
    app.add_middleware(GuardMiddleware(POLICY, principal=Principal("bob"), audit=None,
                                       telemetry=False))  # fmt: skip
    async with Client(app) as client:
        assert (await client.read_resource("data://public"))[0].text == "PUBLIC"  # type: ignore[union-attr]
        with pytest.raises(MCPError, match="not found"):
            await client.read_resource(uri)


@pytest.mark.parametrize(
    ("uri", "denied"),
    [("urn:acme:payroll", True), ("mailto:ceo@acme.test", True), ("data://public", False),
     ("urn-like://x", False), ("config", False)],
)  # fmt: skip
def test_schemes_match_the_text_before_the_first_colon(uri: str, denied: bool) -> None:
    ask = AccessRequest(Principal("bob"), Resource("resource", uri, uri=uri), "read")
    decision: Any = load_policies(POLICY).decide(ask)
    assert decision.allowed is not denied
