"""A guarded FastMCP server: API keys over HTTP, decision records in ./quickstart-audit.

Run: `python examples/quickstart/server.py` (streamable HTTP on 127.0.0.1:8000), then
`python examples/quickstart/client.py` in another terminal.
`--transport stdio` serves one local user instead (the fixed `principal`).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from fastmcp import FastMCP

from guard import GuardMiddleware, Principal
from guard.identity import ApiKeyAuthenticator

HERE = Path(__file__).resolve().parent

mcp = FastMCP("quickstart")


@mcp.tool(tags={"safe"})
def add(a: float, b: float) -> float:
    """Add two numbers."""
    return a + b


@mcp.tool(tags={"safe"})
def divide(a: float, b: float) -> float:
    """Divide a by b."""
    return a / b


@mcp.tool(tags={"admin"})
def reset_counters() -> str:
    """Reset every counter (admins only)."""
    return "counters reset"


@mcp.resource("info://motd")
def motd() -> str:
    return "Welcome to the quickstart server"


@mcp.resource("info://payroll")
def payroll() -> str:
    return "confidential"


guard = GuardMiddleware(
    HERE / "policies.yaml",
    authenticator=ApiKeyAuthenticator(
        {
            "user-key-123": {"user_id": "alice", "roles": ["user"]},
            "admin-key-456": {"user_id": "root", "roles": ["admin"]},
        }
    ),
    principal=Principal("local-user", roles=("user",), auth_method="stdio"),
    audit="quickstart-audit",
    watch=True,  # edit policies.yaml while the server runs
)
mcp.add_middleware(guard)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--transport", choices=["http", "sse", "stdio"], default="http")
    parser.add_argument("--port", type=int, default=8000)
    opts = parser.parse_args()
    try:
        if opts.transport == "stdio":
            mcp.run(transport="stdio", show_banner=False)
        else:
            mcp.run(transport=opts.transport, host="127.0.0.1", port=opts.port)
    finally:
        guard.close()  # flush the decision records


if __name__ == "__main__":
    main()
