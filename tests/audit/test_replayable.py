"""A record holds everything replay needs: re-deciding each stored record, from the store
alone (its columns and the policy texts kept by hash), gives the decision it recorded.
The policy reads every kind of input a record keeps: principal and claims, tags, namespace,
arguments, the request's context and its clock."""

from __future__ import annotations

import json
from datetime import UTC
from pathlib import Path
from typing import Any

from fastmcp import Client, FastMCP
from fastmcp.exceptions import ToolError

from guard import AccessRequest, GuardMiddleware, Principal, Resource, load_policies
from guard.audit import AuditLog, open_store

POLICY = """
name: replay
default_effect: deny
rules:
  - name: no_mallory
    effect: deny
    conditions: [{field: user.id, operator: equals, value: mallory}]
  - name: imperial_is_refused
    effect: deny
    tools: {tags: [weather]}
    actions: [call]
    conditions: [{field: tool.args.units, operator: equals, value: imperial}]  # given always
  - name: list_over_memory
    effect: allow
    tools: {tags: [weather]}
    actions: [list]
    conditions: [{field: request.context.transport, operator: equals, value: memory}]
  - name: team_x_in_europe
    effect: allow
    tools: {namespaces: [wx]}
    actions: [call]
    conditions:
      - {field: user.claims.team, operator: equals, value: x}
      - {field: tool.args.city, operator: in, value: [Paris, Berlin]}
      - {field: request.time.hour, operator: between, value: [0, 23]}
"""


def _server() -> FastMCP[Any]:
    mcp: FastMCP[Any] = FastMCP("replayable")

    @mcp.tool(tags={"weather"}, meta={"namespace": "wx"})
    def forecast(city: str, units: str = "metric") -> str:
        return f"sunny in {city}"

    @mcp.tool(tags={"admin"})
    def purge() -> str:
        return "purged"

    return mcp


def _replayed(row: dict[str, Any]) -> AccessRequest:
    """The request a record describes, rebuilt from its columns only."""
    principal = Principal(
        row["user_id"], tuple(row["roles"]), agent_id=row["agent_id"],
        claims=json.loads(row["claims"]) if row["claims"] else {},
        authenticated=row["authenticated"], auth_method=row["auth_method"],
        key_id=row["key_id"],
    )  # fmt: skip
    resource = Resource(
        row["kind"], row["resource"], tags=frozenset(row["resource_tags"]),
        namespace=row["resource_namespace"], version=row["resource_version"],
        uri=row["resource_uri"], template=row["resource_template"],
        meta=json.loads(row["resource_meta"]) if row["resource_meta"] else {},
    )  # fmt: skip
    return AccessRequest(
        principal, resource, row["action"], json.loads(row["args"]),
        time=row["request_time"].astimezone(UTC), method=row["method"],
        context=json.loads(row["context"]) if row["context"] else None,
    )  # fmt: skip


async def test_every_record_re_decides_to_what_it_recorded(tmp_path: Path) -> None:
    store = tmp_path / "s"
    alice = Principal("alice", ("user",), claims={"team": "x"}, auth_method="stdio")
    mw = GuardMiddleware(POLICY, principal=alice, audit=AuditLog(store), telemetry=False)
    mcp = _server()
    mcp.add_middleware(mw)
    async with Client(mcp) as client:
        assert [t.name for t in await client.list_tools()] == ["forecast"]
        await client.call_tool("forecast", {"city": "Paris", "units": "metric"})
        for args in ({"city": "Rome", "units": "metric"}, {"city": "Berlin", "units": "imperial"}):
            try:
                await client.call_tool("forecast", args)
                raise AssertionError(f"{args} was allowed")
            except ToolError:
                pass
        try:
            await client.call_tool("purge", {})
            raise AssertionError("purge was allowed")
        except ToolError:
            pass
    mw.close()
    with open_store(store) as db:
        cur = db.execute("SELECT * FROM decisions ORDER BY ts, decision_id")
        names = [c[0] for c in cur.description]
        rows = [dict(zip(names, r, strict=True)) for r in cur.fetchall()]
        sets = {h: load_policies(db.policy_texts(h)) for h in {r["policy_hash"] for r in rows}}
    outcomes = {(r["action"], r["resource"], r["allowed"], r["rule"]) for r in rows}
    assert outcomes == {  # every rule above decided something
        ("list", "forecast", True, "list_over_memory"),
        ("list", "purge", False, None),
        ("call", "forecast", True, "team_x_in_europe"),
        ("call", "forecast", False, None),
        ("call", "forecast", False, "imperial_is_refused"),
        ("call", "purge", False, None),
    }
    for row in rows:
        policies = sets[row["policy_hash"]]
        assert policies.hash == row["policy_hash"]
        again = policies.decide(_replayed(row))
        recorded = (row["allowed"], row["reason"], row["rule"], row["policy"])
        assert (again.allowed, again.reason, again.rule, again.policy) == recorded, row
        assert list(again.matched_rules) == row["matched_rules"] and not again.errors, row
