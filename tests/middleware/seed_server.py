"""mcp-auth-guard's "Basic Usage" server from its PyPI page, with `guard` imports.

Only the last line differs: the page's `asyncio.run(mcp.run(transport="http"))` cannot
work on FastMCP 4 (`run` is synchronous); `serve` runs it on the port the test chose.
`--auth jwt|header|none` swaps in the page's other factories.
"""

from __future__ import annotations

import sys

from fastmcp import FastMCP
from servers import serve

from guard import (
    create_api_key_middleware,
    create_header_middleware,
    create_jwt_middleware,
    create_no_auth_middleware,
)

JWT_SECRET = "your-secret-key-that-is-at-least-32-bytes-long"

# Create your MCP server
mcp = FastMCP("My Secure Server")


@mcp.tool()
def safe_tool(data: str) -> str:
    """A safe tool that users can access."""
    return f"Safe processing: {data}"


@mcp.tool()
def sensitive_operation(data: str) -> str:
    """A sensitive tool that requires admin access."""
    return f"Sensitive processing: {data}"


auth = sys.argv[sys.argv.index("--auth") + 1] if "--auth" in sys.argv else "api_key"
if auth == "api_key":
    # Add Auth Guard middleware
    auth_middleware = create_api_key_middleware(
        policies="./policies.yaml",
        api_key_roles={"user-key-123": ["user"], "admin-key-456": ["admin"]},
    )
elif auth == "jwt":
    auth_middleware = create_jwt_middleware(
        jwt_secret=JWT_SECRET, policies="./policies.yaml", required_claims=["sub", "role"]
    )
elif auth == "header":
    auth_middleware = create_header_middleware(
        policies="./policies.yaml",
        header_mapping={"x-user-id": "user_id", "x-user-roles": "roles"},
    )
else:
    auth_middleware = create_no_auth_middleware(policies="./policies.yaml")
mcp.add_middleware(auth_middleware)

if __name__ == "__main__":
    serve(mcp)
