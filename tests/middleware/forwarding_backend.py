"""An unguarded backend for the forwarding tests: a template and, under it, one concrete
resource the policy keeps from users. Served over HTTP by `servers.running_server`."""

from __future__ import annotations

from typing import Any

from fastmcp import FastMCP
from servers import serve

# what the guarded proxy (and the in-process tests) allow: reads through the template only
PROFILES_ONLY = """
name: p
default_effect: deny
rules:
  - name: user_profiles
    effect: allow
    agents: {roles: [user]}
    resource_templates: {names: [profile]}
    actions: [list, read]
"""


def build() -> FastMCP[Any]:
    mcp: FastMCP[Any] = FastMCP("backend")

    @mcp.resource("users://{uid}/profile", name="profile")
    def profile(uid: str) -> str:
        return f"profile {uid}"

    @mcp.resource("users://admin/profile", name="admin_profile", tags={"secret"})
    def admin_profile() -> str:
        return "ADMIN SECRET PROFILE"

    return mcp


if __name__ == "__main__":
    serve(build())
