"""MCP 2026-07-28 results carry caching hints (SEP-2549): `FastMCP(cache_ttl=60,
cache_scope="public")` marks every list and read result as shareable across callers,
and a shared cache (a gateway) may then serve one caller's answer to another. Under the
guard a list shows what *this* caller may see and a read is allowed for *this* caller:
the guard serves those results as `private` (same TTL), and says so once."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from fastmcp import FastMCP
from servers import raw_request, serving_in_thread

from guard import GuardMiddleware, Principal

POLICY = {
    "name": "p",
    "rules": [
        {"name": "users", "effect": "allow", "tools": {"names": ["public_tool"]},
         "resources": {"patterns": ["notes://*"]}, "actions": ["list", "call", "read"]},
    ],
}  # fmt: skip


def _app(**hints: Any) -> FastMCP:
    app = FastMCP("cached", **hints)

    @app.tool
    def public_tool() -> str:
        return "p"

    @app.tool
    def admin_tool() -> str:
        return "a"

    @app.resource("notes://today")
    def notes() -> str:
        return "notes"

    return app


def _post(port: int, method: str, params: dict[str, Any], name: str | None = None) -> Any:
    reply = raw_request(f"http://127.0.0.1:{port}/mcp", method, params, name=name)
    assert reply.status_code == 200, reply.text
    return reply.json()["result"]


def test_public_cache_hints_are_served_private_under_the_guard(
    caplog: pytest.LogCaptureFixture,
) -> None:
    app = _app(cache_ttl=60, cache_scope="public")
    app.add_middleware(GuardMiddleware(POLICY, principal=Principal("bob", roles=("user",))))
    caplog.set_level(logging.WARNING, logger="guard")
    with serving_in_thread(app.http_app()) as port:
        for _ in range(2):
            listed = _post(port, "tools/list", {})
            read = _post(port, "resources/read", {"uri": "notes://today"}, "notes://today")
            templates = _post(port, "resources/templates/list", {})
    assert [t["name"] for t in listed["tools"]] == ["public_tool"]
    for result in (listed, read, templates):
        assert result["cacheScope"] == "private"
        assert result["ttlMs"] == 60_000  # the operator's TTL stands
    warnings = [r for r in caplog.records if "cache" in r.getMessage()]
    assert len(warnings) == 1, [r.getMessage() for r in warnings]
    assert "public" in warnings[0].getMessage()


def test_private_hints_are_left_as_they_are(caplog: pytest.LogCaptureFixture) -> None:
    app = _app(cache_ttl=30)  # private unless said otherwise
    hints = dict(app._mcp_server.cache_hints)
    app.add_middleware(GuardMiddleware(POLICY, principal=Principal("bob", roles=("user",))))
    caplog.set_level(logging.WARNING, logger="guard")
    with serving_in_thread(app.http_app()) as port:
        listed = _post(port, "tools/list", {})
    assert listed["cacheScope"] == "private" and listed["ttlMs"] == 30_000
    assert app._mcp_server.cache_hints == hints
    assert not [r for r in caplog.records if "cache" in r.getMessage()]
