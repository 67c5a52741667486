"""A FastMCP server with its own auth provider (`JWTVerifier`) and the guard reading the
token FastMCP verified (`FastMCPTokenAuthenticator`). Run by `servers.running_server`.

Environment: `GUARD_TEST_PUBLIC_KEY` (PEM of the RS256 verification key).
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

from fastmcp import FastMCP
from fastmcp.server.auth.providers.jwt import JWTVerifier
from servers import serve

from guard import GuardMiddleware
from guard.identity import FastMCPTokenAuthenticator

logging.basicConfig(level=logging.DEBUG, stream=sys.stderr, format="%(name)s %(message)s")

verifier = JWTVerifier(
    public_key=os.environ["GUARD_TEST_PUBLIC_KEY"],
    issuer="https://idp.test",
    audience="mcp-e2e",
    algorithm="RS256",
)
mcp = FastMCP("fastmcp-auth-test", auth=verifier)


@mcp.tool(tags={"safe"})
def echo(text: str) -> str:
    """Repeat the text."""
    return f"echo: {text}"


@mcp.tool(tags={"admin"})
def drop_table(name: str) -> str:
    """Pretend to drop a table."""
    return f"dropped {name}"


mcp.add_middleware(
    GuardMiddleware(
        str(Path(__file__).with_name("identity_policy.yaml")),
        authenticator=FastMCPTokenAuthenticator(),
        audit=None,
        telemetry=False,
    )
)

if __name__ == "__main__":
    serve(mcp)
