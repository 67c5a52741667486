"""A guarded HTTP server whose every decision is recorded (audit tests).

Identity: API keys (`X-API-Key`) or HS256 bearer JWTs. Environment: `MCP_GUARD_AUDIT` (the
store), `AUDIT_DURABLE=1` (durable mode), `AUDIT_JSON=1` (plain JSON responses: lighter
for load tests). Arguments: `--port N`.
"""

from __future__ import annotations

import argparse
import os

from audit_kit import JWT_SECRET, RAW_API_KEY
from fastmcp import FastMCP

from guard import GuardMiddleware
from guard.audit import AuditLog
from guard.identity import ApiKeyAuthenticator, ChainAuthenticator, JWTAuthenticator

POLICY = """\
name: audit_test
default_effect: deny
rules:
  - name: users_call_safe
    effect: allow
    agents: {roles: [user]}
    tools: {tags: [safe]}
    actions: [list, call]
"""

mcp = FastMCP("audit-test")


@mcp.tool(tags={"safe"})
def echo(text: str) -> str:
    """Repeat the text."""
    return f"echo: {len(text)} chars"


@mcp.tool(tags={"safe"})
def add(a: int, b: int) -> int:
    return a + b


for n in range(8):
    mcp.tool(lambda x: x, name=f"hidden_{n}", tags={"admin"}, description="admin only")

mcp.add_middleware(
    GuardMiddleware(
        POLICY,
        authenticator=ChainAuthenticator(
            [
                JWTAuthenticator(JWT_SECRET, algorithms=["HS256"]),
                ApiKeyAuthenticator({RAW_API_KEY: {"user_id": "alice", "roles": ["user"]}}),
            ]
        ),
        audit=AuditLog(
            os.environ["MCP_GUARD_AUDIT"], durable=os.environ.get("AUDIT_DURABLE") == "1"
        ),
        telemetry=False,
    )
)

if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--transport", default="http")
    parser.add_argument("--port", type=int, required=True)
    opts = parser.parse_args()
    mcp.run(
        transport="http", host="127.0.0.1", port=opts.port, show_banner=False,
        log_level="warning", json_response=os.environ.get("AUDIT_JSON") == "1",
        # hundreds of sessions share pooled connections that may idle for seconds on a
        # busy machine: do not close them under the client's feet
        uvicorn_config={"timeout_keep_alive": 600, "backlog": 4096},
    )  # fmt: skip
