"""Found in review: a read through a template that takes no query was decided on the URI
with the caller's query kept, though the template ignores it: `users://7/payroll?x=1`
ran `payroll` for user 7 while a deny rule on `users://*/payroll` did not match the text.
The guard decides on the URI the read reaches, and a query the template does not take
is not part of it (a template that declares query parameters keeps its query)."""

from __future__ import annotations

from typing import Any

import pytest
from fastmcp import Client, FastMCP
from fastmcp.exceptions import ResourceError
from mcp.shared.exceptions import MCPError

from guard import GuardMiddleware, Principal
from guard.audit import open_store

POLICY = {
    "name": "p",
    "rules": [
        {"name": "read-users", "effect": "allow", "resources": {"patterns": ["users://*",
         "search://*"]}, "actions": ["read"]},
        {"name": "no-payroll", "effect": "deny", "priority": 200,
         "resources": {"patterns": ["users://*/payroll"]}, "actions": ["read"]},
        {"name": "no-secret-search", "effect": "deny", "priority": 200,
         "resources": {"patterns": ["search://secret?*"]}, "actions": ["read"]},
    ],
}  # fmt: skip


def _backend() -> FastMCP:
    app = FastMCP("users")

    @app.resource("users://{uid}/payroll")
    def payroll(uid: str) -> str:
        return f"payroll of {uid}"

    @app.resource("users://{uid}/profile")
    def profile(uid: str) -> str:
        return f"profile of {uid}"

    @app.resource("search://{q}{?limit}")
    def search(q: str, limit: int = 10) -> str:
        return f"{limit} results for {q}"

    return app


async def _read(app: FastMCP, uri: str) -> str | None:
    async with Client(app) as client:
        try:
            contents: Any = await client.read_resource(uri)
        except (ResourceError, MCPError) as denied:  # (how depends on the protocol path)
            assert "not found" in str(denied)
            return None
        return str(contents[0].text)


@pytest.mark.parametrize("mounted", [False, True])
@pytest.mark.parametrize("query", ["?x=1", "?uid=8", "?", "?payroll", "?%2F..%2Fprofile"])
async def test_a_query_the_template_ignores_does_not_slip_past_a_deny(
    mounted: bool, query: str, tmp_path: Any
) -> None:
    if mounted:
        app = FastMCP("front")
        app.mount(_backend())
    else:
        app = _backend()
    guard = GuardMiddleware(POLICY, principal=Principal("bob"), audit=tmp_path / "store")
    app.add_middleware(guard)
    assert await _read(app, "users://7/profile" + query) == "profile of 7"
    assert await _read(app, "users://7/payroll" + query) is None
    guard.close()
    with open_store(tmp_path / "store") as con:
        rows = con.execute(
            "SELECT resource_uri, allowed FROM decisions ORDER BY ts, resource_uri"
        ).fetchall()
    # decided (and recorded) on what the template serves
    assert ("users://7/payroll", False) in rows
    assert all("?" not in uri for uri, _ in rows)


async def test_a_template_that_takes_a_query_is_decided_with_it() -> None:
    app = _backend()
    app.add_middleware(GuardMiddleware(POLICY, principal=Principal("bob"), audit=None))
    assert await _read(app, "search://cats?limit=3") == "3 results for cats"
    assert await _read(app, "search://secret?limit=3") is None
