"""`size_lte` measures a value's canonical JSON, but took a read-only mapping (the
request context, a tool's meta, the claims an authenticator keeps, a listing's empty
arguments: all `MappingProxyType`) for something that is not JSON: unknown live, and
measured on replay, where the record gives them back as dicts. An allow rule bounding
their size never applied live, and replay said it did. Now measured the same way both
times."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastmcp import Client, FastMCP
from replay_helpers import again, recorded, redecide, rows

from guard import GuardMiddleware, Principal
from guard.audit import AuditLog

POLICY = """
name: sizes
default_effect: deny
rules:
  - name: small_contexts
    effect: allow
    tools: {names: [report]}
    actions: [call]
    conditions:
      - {field: request.context, operator: size_lte, value: 200}
      - {field: tool.metadata, operator: size_lte, value: 50}
      - {field: user.claims, operator: size_lte, value: 50}
  - name: plain_listings
    effect: allow
    actions: [list]
    conditions: [{field: tool.args, operator: size_lte, value: 2}]
"""


async def test_read_only_mappings_are_measured_live_as_on_replay(tmp_path: Path) -> None:
    store = tmp_path / "s"
    mcp: FastMCP[Any] = FastMCP("sizes")

    @mcp.tool(meta={"owner": "ops"})
    def report() -> str:
        return "report"

    dana = Principal("dana", ("user",), claims={"team": "x"})
    mw = GuardMiddleware(POLICY, principal=dana, audit=AuditLog(store), telemetry=False)
    mcp.add_middleware(mw)
    async with Client(mcp) as client:
        assert [t.name for t in await client.list_tools()] == ["report"]
        assert (await client.call_tool("report", {})).data == "report"
    mw.close()
    found = rows(store)
    assert {(r["method"], r["rule"]) for r in found} == {
        ("tools/list", "plain_listings"),
        ("tools/call", "small_contexts"),
    }
    for row in found:
        assert again(redecide(store, row)) == recorded(row), row["method"]
