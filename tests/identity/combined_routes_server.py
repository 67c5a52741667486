"""A guarded server whose MCP routes are served by the host app's own Starlette
(`Starlette(routes=mcp_app.routes, ...)`), so FastMCP's RequestContextMiddleware is not
in the stack and FastMCP's transport context variable stays unset."""

import sys

import uvicorn
from fastmcp import FastMCP
from starlette.applications import Starlette

from guard import GuardMiddleware, Principal
from guard.identity import ApiKeyAuthenticator

mcp = FastMCP("combined")


@mcp.tool(tags={"admin"})
def drop_table(name: str) -> str:
    return f"dropped {name}"


mcp.add_middleware(
    GuardMiddleware(
        {
            "name": "p",
            "default_effect": "deny",
            "rules": [
                {
                    "name": "admins",
                    "effect": "allow",
                    "agents": {"roles": ["admin"]},
                    "tools": {"patterns": ["*"]},
                    "actions": ["list", "call"],
                }
            ],
        },
        authenticator=ApiKeyAuthenticator({"admin-key-0123456789": ["admin"]}),
        principal=Principal("local-dev", roles=("admin",)),  # for stdio / in-memory only
        audit=None,
        telemetry=False,
    )
)
mcp_app = mcp.http_app(path="/mcp")
app = Starlette(routes=list(mcp_app.routes), lifespan=mcp_app.lifespan)

if __name__ == "__main__":
    uvicorn.run(
        app, host="127.0.0.1", port=int(sys.argv[sys.argv.index("--port") + 1]), log_level="warning"
    )
