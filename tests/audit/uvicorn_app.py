"""An ASGI app for `uvicorn uvicorn_app:app --workers N`: a guarded server whose records
stay queued until the log is closed (`flush_interval` of an hour), so a test sees whether a
worker's shutdown flushes them. Environment: `MCP_GUARD_AUDIT` (the store)."""

from __future__ import annotations

import os

from audit_kit import RAW_API_KEY
from fastmcp import FastMCP

from guard import GuardMiddleware
from guard.audit import AuditLog
from guard.identity import ApiKeyAuthenticator

mcp = FastMCP("uvicorn-workers")


@mcp.tool
def add(a: int, b: int) -> int:
    return a + b


@mcp.tool
def worker() -> int:
    """The worker process that answers."""
    return os.getpid()


mcp.add_middleware(
    GuardMiddleware(
        "name: t\ndefault_effect: allow\nrules: []\n",
        authenticator=ApiKeyAuthenticator({RAW_API_KEY: {"user_id": "alice", "roles": ["user"]}}),
        audit=AuditLog(os.environ["MCP_GUARD_AUDIT"], flush_interval=3600),
        telemetry=False,
    )
)
# stateless: a worker answers any request, whichever worker its session began in
app = mcp.http_app(stateless_http=True, json_response=True)
