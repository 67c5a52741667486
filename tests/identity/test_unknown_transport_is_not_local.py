"""A network request whose transport FastMCP did not label must not be taken for a local
(stdio / in-memory) one (found in review: an authentication bypass).

`guard._fastmcp.current_transport` maps an unset `_current_transport` to `memory`, and
`GuardMiddleware._begin` (guard/middleware.py:411-413) skips the authenticator for
`memory` when a fixed `principal=` is configured. FastMCP only sets that variable in its
own `RequestContextMiddleware`; an app that serves `mcp_app.routes` from its own Starlette
does not run it, so every HTTP caller becomes the fixed local principal.
"""

from __future__ import annotations

from pathlib import Path

from identity_kit import call
from servers import running_server

SCRIPT = Path(__file__).with_name("combined_routes_server.py")


async def test_http_caller_without_key_is_not_the_local_principal(tmp_path: Path) -> None:
    with running_server(SCRIPT, transport="http", cwd=tmp_path) as srv:
        assert (
            await call(srv.url, {"X-API-Key": "admin-key-0123456789"}, "drop_table") == "dropped t"
        )
        no_key = await call(srv.url, {}, "drop_table")
        assert no_key.startswith("denied"), f"HTTP caller with no credential got: {no_key!r}"


async def test_http_caller_is_not_local_under_an_inherited_stdio_label() -> None:
    """FastMCP labels the transport in a context variable, which tasks inherit: the same
    routes served over HTTP from inside a stdio server's run (its lifespan, a tool) carry
    the `stdio` label into every HTTP request. A request that came over HTTP is `http`
    whatever the label says; else any network caller is the launcher's local user."""
    import asyncio

    import uvicorn
    from fastmcp import FastMCP
    from fastmcp.server.context import reset_transport, set_transport
    from servers import free_port
    from starlette.applications import Starlette

    from guard import GuardMiddleware, Principal
    from guard.identity import ApiKeyAuthenticator

    mcp = FastMCP("stdio-and-http")

    @mcp.tool
    def drop_table(name: str) -> str:
        return f"dropped {name}"

    policy = {
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
    }
    mcp.add_middleware(
        GuardMiddleware(
            policy,
            authenticator=ApiKeyAuthenticator({"admin-key-0123456789": ["admin"]}),
            principal=Principal("local-dev", roles=("admin",)),  # stdio / in-memory only
            audit=None,
            telemetry=False,
        )
    )
    mcp_app = mcp.http_app(path="/mcp")
    app = Starlette(routes=list(mcp_app.routes), lifespan=mcp_app.lifespan)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    label = set_transport("stdio")  # as `run_stdio_async` sets it for everything it runs
    try:
        serving = asyncio.create_task(server.serve())
    finally:
        reset_transport(label)
    try:
        while not server.started:
            assert not serving.done(), "server did not start"
            await asyncio.sleep(0.02)
        url = f"http://127.0.0.1:{port}/mcp"
        assert await call(url, {"X-API-Key": "admin-key-0123456789"}, "drop_table") == "dropped t"
        no_key = await call(url, {}, "drop_table")
        assert no_key.startswith("denied"), f"HTTP caller with no credential got: {no_key!r}"
    finally:
        server.should_exit = True
        await serving
