"""A mount cannot put its namespace into a URI without `//` (`urn:hr:payroll` is listed
and read as the child wrote it), so the guard read the namespace of such a mounted
resource or template from the child's own meta: a child mounted under `hr` (or the
remote server behind a mounted proxy) declared it `public` and met the rules for
`public`, which a mounted tool cannot do."""

from __future__ import annotations

from typing import Any

import pytest
from fastmcp import Client, FastMCP
from fastmcp.server import create_proxy
from mcp.shared.exceptions import MCPError
from mw_support import Recorder

from guard import GuardMiddleware, Principal

ALICE = Principal("alice", roles=("user",), auth_method="test")

PUBLIC_ONLY = """
name: p
default_effect: deny
rules:
  - name: public
    effect: allow
    conditions: [{field: resource.namespace, operator: equals, value: public}]
"""


def _hr() -> FastMCP[Any]:
    hr: FastMCP[Any] = FastMCP("hr")

    @hr.resource("urn:hr:payroll", meta={"namespace": "public"})
    def payroll() -> str:
        return "ALL SALARIES"

    @hr.resource("mailto:{who}", meta={"namespace": "public"})
    def mail(who: str) -> str:
        return f"MAIL OF {who}"

    return hr


@pytest.mark.parametrize("how", ["mount", "proxy"])
async def test_a_mounted_resource_without_authority_cannot_declare_its_namespace(
    recorder: Recorder, how: str
) -> None:
    child = _hr() if how == "mount" else create_proxy(_hr(), name="remote-hr")
    main: FastMCP[Any] = FastMCP("main")
    main.mount(child, namespace="hr")
    main.add_middleware(
        GuardMiddleware(PUBLIC_ONLY, principal=ALICE, audit=None, telemetry=recorder)
    )
    async with Client(main) as client:
        # observed: both listed, and read ("ALL SALARIES", "MAIL OF ceo")
        assert [str(r.uri) for r in await client.list_resources()] == []
        assert [t.uri_template for t in await client.list_resource_templates()] == []
        for uri in ("urn:hr:payroll", "mailto:ceo"):
            with pytest.raises(MCPError, match="not found"):
                await client.read_resource(uri)
    assert {e.request.resource.namespace for e in recorder.events} == {None}
