"""`resources` rules on a read through a template are matched against the URI text the
caller sent, but the template hands its function the percent-decoded parameters: a deny
rule on `users://admin/*` is sidestepped by `users://%61dmin/profile`, and
`profile("admin")` runs (on a plain server, no proxy involved)."""

from __future__ import annotations

from typing import Any

import pytest
from fastmcp import Client, FastMCP
from mcp.shared.exceptions import MCPError
from mw_support import Recorder

from guard import GuardMiddleware, Principal

ALICE = Principal("alice", roles=("user",), auth_method="test")

NOT_ADMINS = """
name: p
default_effect: deny
rules:
  - name: nobody_reads_admins
    effect: deny
    priority: 1000
    resources: {patterns: ["users://admin/*"]}
  - name: user_profiles
    effect: allow
    agents: {roles: [user]}
    resource_templates: {names: [profile]}
    actions: [list, read]
"""


@pytest.mark.parametrize("uri", ["users://%61dmin/profile", "users://%61%64%6d%69%6e/profile"])
async def test_percent_encoding_sidesteps_a_uri_deny_rule(recorder: Recorder, uri: str) -> None:
    mcp: FastMCP[Any] = FastMCP("s")

    @mcp.resource("users://{uid}/profile", name="profile")
    def profile(uid: str) -> str:
        return f"profile of {uid}"

    mcp.add_middleware(GuardMiddleware(NOT_ADMINS, principal=ALICE, audit=None, telemetry=recorder))
    async with Client(mcp) as client:
        assert (await client.read_resource("users://bob/profile"))[0].text == "profile of bob"
        with pytest.raises(MCPError, match="Resource not found"):
            await client.read_resource("users://admin/profile")
        # observed: "profile of admin", allowed by user_profiles
        with pytest.raises(MCPError, match="Resource not found"):
            await client.read_resource(uri)
