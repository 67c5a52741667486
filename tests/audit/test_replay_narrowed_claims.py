"""Claims left out by `AuditLog(claims=[...])` were dropped from the record without a
word: replay took them for absent, and a rule reading whether a claim exists decided the
other way (a deny on tokens without `dept` refused, on replay, the caller it had let
through). A claim kept out of the record is now a marker listed in `inputs_redacted`,
which replay treats as unknown, never as empty: its value is still not recorded."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from fastmcp import Client, FastMCP
from replay_helpers import again, recorded, redecide, rows

from guard import GuardMiddleware, Principal
from guard.audit import AuditLog, verify

POLICY = """
name: depts
default_effect: allow
rules:
  - name: tokens_without_dept
    effect: deny
    conditions: [{field: user.claims.dept, operator: not_exists}]
"""


async def test_a_claim_left_out_of_the_record_replays_as_unknown(tmp_path: Path) -> None:
    store = tmp_path / "s"
    mcp: FastMCP[Any] = FastMCP("depts")

    @mcp.tool
    def report() -> str:
        return "report"

    carol = Principal("carol", ("user",), claims={"team": "x", "dept": "payroll-7731"})
    log = AuditLog(store, claims=["team"])
    mw = GuardMiddleware(POLICY, principal=carol, audit=log, telemetry=False)
    mcp.add_middleware(mw)
    async with Client(mcp) as client:
        assert (await client.call_tool("report", {})).data == "report"
        assert [t.name for t in await client.list_tools()] == ["report"]
    mw.close()

    found = rows(store)
    assert {r["method"] for r in found} >= {"tools/call", "tools/list"}
    for row in found:
        assert recorded(row)[:2] == (True, "default"), row["method"]
        assert again(redecide(store, row)) == recorded(row), row["method"]
        claims = json.loads(row["claims"])
        assert claims == {"team": "x", "dept": "<redacted:path>"}
        assert row["inputs_redacted"] == ["claims.dept"], row["method"]
    assert b"payroll-7731" not in b"".join(p.read_bytes() for p in store.rglob("*") if p.is_file())
    assert verify(store).ok
