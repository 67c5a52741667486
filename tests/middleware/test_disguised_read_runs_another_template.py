"""A read through a template is decided on the URI it reaches (`reached_uri`); but on a
plain server, the template FastMCP runs is the one the text *sent* matches. Where the
reached URI falls under another, earlier template, the guard decided on that one:
`users://%61dmin/payroll` matches only `payroll` (the literal `admin` of `admin_docs`
does not match `%61dmin`), FastMCP ran `payroll("admin")`, and the guard had decided on
`admin_docs`, which the policy allows."""

from __future__ import annotations

import pytest
from fastmcp import Client
from mcp.shared.exceptions import MCPError
from mw_support import Recorder, disguise_server

from guard import GuardMiddleware, Principal

ALICE = Principal("alice", roles=("user",), auth_method="test")

DOCS_ONLY = """
name: p
default_effect: deny
rules:
  - name: admin_docs
    effect: allow
    agents: {roles: [user]}
    resource_templates: {names: [admin_docs]}
    actions: [list, read]
"""


@pytest.mark.parametrize("uri", ["users://%61dmin/payroll", "users://%61%64%6d%69%6e/payroll"])
async def test_a_disguised_uri_is_decided_on_the_template_that_runs(
    recorder: Recorder, uri: str
) -> None:
    mcp = disguise_server()
    mcp.add_middleware(GuardMiddleware(DOCS_ONLY, principal=ALICE, audit=None, telemetry=recorder))
    async with Client(mcp) as client:
        assert (await client.read_resource("users://admin/payroll"))[0].text == "doc payroll"
        with pytest.raises(MCPError, match="Resource not found"):
            await client.read_resource("users://bob/payroll")
        # observed: "PAYROLL OF admin", decided on admin_docs at users://admin/payroll
        with pytest.raises(MCPError, match="Resource not found"):
            await client.read_resource(uri)
    denied = [e for e in recorder.events if not e.decision.allowed]
    assert any(e.request.resource.template == "users://{uid}/payroll" for e in denied)


async def test_a_disguised_uri_both_templates_allow_is_read(recorder: Recorder) -> None:
    both = DOCS_ONLY.replace("names: [admin_docs]", "names: [admin_docs, payroll]")
    mcp = disguise_server()
    mcp.add_middleware(GuardMiddleware(both, principal=ALICE, audit=None, telemetry=recorder))
    async with Client(mcp) as client:
        text = (await client.read_resource("users://%61dmin/payroll"))[0].text
    assert text == "PAYROLL OF admin"
    # one decision for each component: the template that ran, and what the URI names
    reads = [e for e in recorder.events if e.method == "resources/read"]
    assert {e.request.resource.name for e in reads} == {"admin_docs", "payroll"}
    assert all(e.request.action == "read" and e.decision.allowed for e in reads)
