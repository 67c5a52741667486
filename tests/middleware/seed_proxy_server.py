"""mcp-auth-guard's "Securing Existing MCP Servers with Proxy" snippet, on FastMCP 4.

`FastMCP.as_proxy(client)` is gone; `create_proxy(client)` replaces it. The backend is a
local stdio server standing in for mcp-server-sqlite.
"""

from __future__ import annotations

import sys
from pathlib import Path

from fastmcp import Client
from fastmcp.server import create_proxy
from servers import serve

from guard import create_api_key_middleware

# 1. Connect to an existing MCP server (stdio)
config = {
    "mcpServers": {
        "sqlite": {
            "command": sys.executable,
            "args": [str(Path(__file__).with_name("backend_server.py"))],
        }
    }
}
client = Client(config)

# 2. Create proxy with authorization
proxy_server = create_proxy(client)
auth_middleware = create_api_key_middleware(
    policies="./database_policies.yaml",
    api_key_roles={
        "read-only-key-123": ["reader"],  # SELECT queries only
        "admin-key-456": ["admin"],  # Full database access
    },
)
proxy_server.add_middleware(auth_middleware)

# 3. Run authorized proxy
if __name__ == "__main__":
    serve(proxy_server)
