"""A guarded FastMCP server for identity tests: JWT, else API key, else trusted headers
(`GUARD_TEST_AUTH=matrix`: JWT keys from `GUARD_TEST_JWKS_URL`; `GUARD_TEST_AUTH=stdio`:
the launcher's user from the environment).

Run by `servers.running_server`. Everything it logs goes to stderr at DEBUG, so the tests
can scan it for credentials. Environment: `GUARD_TEST_JWT_SECRET` (HS256 secret),
`GUARD_TEST_API_KEYS` (YAML/JSON key map), `MCP_GUARD_AUDIT` (decision store).
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

from fastmcp import FastMCP
from servers import serve

from guard import GuardMiddleware
from guard.identity import (
    ApiKeyAuthenticator,
    Authenticator,
    ChainAuthenticator,
    HeaderAuthenticator,
    JWTAuthenticator,
    StdioAuthenticator,
)

logging.basicConfig(level=logging.DEBUG, stream=sys.stderr, format="%(name)s %(message)s")

mcp = FastMCP("identity-test")


@mcp.tool(tags={"safe"})
def echo(text: str) -> str:
    """Repeat the text."""
    return f"echo: {text}"


@mcp.tool(tags={"admin"})
def drop_table(name: str) -> str:
    """Pretend to drop a table."""
    return f"dropped {name}"


auth: Authenticator
mode = os.environ.get("GUARD_TEST_AUTH", "chain")
if mode == "stdio":
    auth = StdioAuthenticator()  # MCP_GUARD_USER / MCP_GUARD_ROLES from the launcher
elif mode == "matrix":
    # keys from the test's JWKS endpoint; every refresh allowed, so an outage shows at once
    auth = ChainAuthenticator(
        [
            JWTAuthenticator(
                jwks_url=os.environ["GUARD_TEST_JWKS_URL"],
                audience="mcp-e2e",
                issuer="https://idp.test",
                required_claims=["tenant"],
                jwks_min_refresh_interval=0,
                jwks_timeout=2,
            ),
            ApiKeyAuthenticator(env="GUARD_TEST_API_KEYS"),
            HeaderAuthenticator(trusted_proxies=["10.0.0.0/8"]),
        ]
    )
else:
    auth = ChainAuthenticator(
        [
            JWTAuthenticator(os.environ["GUARD_TEST_JWT_SECRET"], audience="mcp-e2e"),
            ApiKeyAuthenticator(env="GUARD_TEST_API_KEYS"),
            # loopback deliberately not trusted: every test client is an untrusted sender
            HeaderAuthenticator(trusted_proxies=["10.0.0.0/8"]),
        ]
    )
mcp.add_middleware(
    GuardMiddleware(
        str(Path(__file__).with_name("identity_policy.yaml")),
        authenticator=auth,
        audit=os.environ.get("MCP_GUARD_AUDIT") or None,
        telemetry=False,
    )
)

if __name__ == "__main__":
    serve(mcp)
