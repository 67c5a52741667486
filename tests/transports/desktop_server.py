"""A guarded stdio server configured as a desktop MCP client launches one: no arguments,
the environment only (`MCP_GUARD_USER`, `MCP_GUARD_ROLES`, `MCP_GUARD_AUDIT`, ...), the
guard's defaults otherwise (records in `./mcp-guard-audit.duckdb`, telemetry on), and a
working directory of the client's choosing. Run by `test_desktop_launch.py`.

Environment: `GUARD_POLICY` (policy file; default: the one next to this script).
"""

from __future__ import annotations

import os
from pathlib import Path

from fastmcp import FastMCP

from guard import GuardMiddleware
from guard.identity import StdioAuthenticator

mcp = FastMCP("desktop")


@mcp.tool(tags={"safe"})
def echo(text: str) -> str:
    """Repeat the text."""
    return f"echo: {text}"


mcp.add_middleware(
    GuardMiddleware(
        os.environ.get("GUARD_POLICY", str(Path(__file__).with_name("policy.yaml"))),
        authenticator=StdioAuthenticator(),
    )
)

if __name__ == "__main__":
    mcp.run(transport="stdio", show_banner=False)
