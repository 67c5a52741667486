"""A guarded FastMCP server for transport tests: API keys over HTTP/SSE, a fixed
identity on stdio. Run by `servers.running_server` / `servers.stdio_command`.

Environment: `GUARD_POLICY` (policy file; default: the one next to this script),
`MCP_GUARD_AUDIT` (decision store; unset: no records).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from fastmcp import FastMCP
from servers import serve

from guard import GuardMiddleware, Principal
from guard.identity import ApiKeyAuthenticator

HERE = Path(__file__).resolve().parent

mcp = FastMCP("transport-test")


@mcp.tool(tags={"safe"})
def echo(text: str) -> str:
    """Repeat the text."""
    return f"echo: {text}"


@mcp.tool(tags={"admin"})
def drop_table(name: str) -> str:
    """Pretend to drop a table."""
    return f"dropped {name}"


@mcp.resource("data://public")
def public() -> str:
    return "public data"


@mcp.resource("data://secret")
def secret() -> str:
    return "secret data"


@mcp.prompt
def greet(name: str) -> str:
    return f"Hello {name}"


@mcp.prompt
def admin_prompt(topic: str) -> str:
    return f"admin only: {topic}"


@mcp.completion
def complete(ref: Any, argument: Any, context: Any) -> list[str]:
    if ref.name == "admin_prompt":  # never reached for callers the guard denies
        raise RuntimeError("the completion handler ran for a denied prompt")
    return ["Ada", "Alan"]


mcp.add_middleware(
    GuardMiddleware(
        os.environ.get("GUARD_POLICY", str(HERE / "policy.yaml")),
        authenticator=ApiKeyAuthenticator(
            {
                "user-key-123": {"user_id": "alice", "roles": ["user"]},
                "admin-key-456": {"user_id": "root", "roles": ["admin"]},
            }
        ),
        principal=Principal("local-operator", roles=("user",), auth_method="stdio"),
        audit=os.environ.get("MCP_GUARD_AUDIT") or None,
        telemetry=False,
    )
)

if __name__ == "__main__":
    serve(mcp)
