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
