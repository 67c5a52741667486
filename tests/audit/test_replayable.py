"""A record holds everything replay needs: re-deciding each stored record, from the store
alone (its columns and the policy texts kept by hash), gives the decision it recorded, and
the shadow draft's. The policy reads every kind of input a record keeps: principal and
claims, tags, namespace, URI, arguments, the request's context and its clock, for tools,
resources, templates and prompts, listed and used."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastmcp import Client, FastMCP
from fastmcp.exceptions import ToolError
from mcp.shared.exceptions import MCPError

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
      - {field: request.time, operator: between, value: [FROM, UNTIL]}  # the test's hour
  - name: profiles_listed
    effect: allow
    resource_templates: {names: [profile]}
    actions: [list]
  - name: own_profile
    effect: allow
    resource_templates: {names: [profile]}
    actions: [read]
    conditions: [{field: resource.uri, operator: glob, value: "users://alice/*"}]
  - name: public_data
    effect: allow
    resources: {schemes: [data]}
    actions: [list, read]
  - name: greetings_listed
    effect: allow
    prompts: {names: [greet]}
    actions: [list]
  - name: friendly_greetings
    effect: allow
    prompts: {names: [greet]}
    actions: [get]
    conditions: [{field: request.args.name, operator: not_equals, value: root}]
"""


def _policies() -> tuple[str, str]:
    """The live policy, open for an hour around now (a record's clock that is off, by a
    time zone say, re-decides differently), and the draft under review: Berlin is out, and
    greetings are for nobody."""
    now = datetime.now(UTC)
    live = POLICY.replace("FROM", (now - timedelta(minutes=30)).isoformat()).replace(
        "UNTIL", (now + timedelta(minutes=30)).isoformat()
    )
    draft = live.replace("[Paris, Berlin]", "[Paris]").replace(
        "operator: not_equals, value: root", "operator: equals, value: nobody"
    )
    return live, draft


def _server() -> FastMCP[Any]:
    mcp: FastMCP[Any] = FastMCP("replayable")

    @mcp.tool(tags={"weather"}, meta={"namespace": "wx"})
    def forecast(city: str, units: str = "metric") -> str:
        return f"sunny in {city}"

    @mcp.tool(tags={"admin"})
    def purge() -> str:
        return "purged"

    @mcp.resource("data://public", tags={"open"})
    def public() -> str:
        return "public"

    @mcp.resource("users://{uid}/profile", name="profile")
    def profile(uid: str) -> str:
        return f"profile {uid}"

    @mcp.prompt
    def greet(name: str) -> str:
        return f"Hello {name}"

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
    live, draft = _policies()
    mw = GuardMiddleware(
        live, principal=alice, audit=AuditLog(store), telemetry=False, shadow=draft
    )
    mcp = _server()
    mcp.add_middleware(mw)
    async with Client(mcp) as client:
        assert [t.name for t in await client.list_tools()] == ["forecast"]
        assert [r.name for r in await client.list_resources()] == ["public"]
        assert [t.name for t in await client.list_resource_templates()] == ["profile"]
        assert [p.name for p in await client.list_prompts()] == ["greet"]
        await client.read_resource("data://public")
        await client.read_resource("users://alice/profile")
        with pytest.raises(MCPError, match="Resource not found"):
            await client.read_resource("users://bob/profile")
        await client.get_prompt("greet", {"name": "alice"})
        with pytest.raises(MCPError, match="Unknown prompt"):
            await client.get_prompt("greet", {"name": "root"})
        await client.call_tool("forecast", {"city": "Paris", "units": "metric"})
        await client.call_tool("forecast", {"city": "Berlin", "units": "metric"})
        for args in ({"city": "Rome", "units": "metric"}, {"city": "Berlin", "units": "imperial"}):
            with pytest.raises(ToolError, match="Unknown tool"):
                await client.call_tool("forecast", args)
        with pytest.raises(ToolError, match="Unknown tool"):
            await client.call_tool("purge", {})
    mw.close()
    with open_store(store) as db:
        cur = db.execute("SELECT * FROM decisions ORDER BY ts, decision_id")
        names = [c[0] for c in cur.description]
        rows = [dict(zip(names, r, strict=True)) for r in cur.fetchall()]
        hashes = {r["policy_hash"] for r in rows} | {r["shadow_policy_hash"] for r in rows}
        sets = {h: load_policies(db.policy_texts(h)) for h in hashes}
    outcomes = {(r["action"], r["resource"], r["allowed"], r["rule"]) for r in rows}
    assert outcomes == {  # each rule but no_mallory decided (which every record re-checks)
        ("list", "forecast", True, "list_over_memory"),
        ("list", "purge", False, None),
        ("call", "forecast", True, "team_x_in_europe"),
        ("call", "forecast", False, None),
        ("call", "forecast", False, "imperial_is_refused"),
        ("call", "purge", False, None),
        ("list", "public", True, "public_data"),  # a resource's name; its URI is data://
        ("read", "public", True, "public_data"),
        ("list", "profile", True, "profiles_listed"),
        ("read", "profile", True, "own_profile"),  # the template read at users://alice/
        ("read", "profile", False, None),  # ... and at users://bob/
        ("list", "greet", True, "greetings_listed"),
        ("get", "greet", True, "friendly_greetings"),
        ("get", "greet", False, None),
    }
    disagreements = 0
    for row in rows:
        request = _replayed(row)
        for prefix in ("", "shadow_"):
            policies = sets[row[f"{prefix}policy_hash"]]
            assert policies.hash == row[f"{prefix}policy_hash"]
            again = policies.decide(request)
            recorded = tuple(row[f"{prefix}{c}"] for c in ("allowed", "reason", "rule", "policy"))
            assert (again.allowed, again.reason, again.rule, again.policy) == recorded, row
            assert not again.errors, row
            if not prefix:
                assert list(again.matched_rules) == row["matched_rules"], row
        disagreements += row["allowed"] != row["shadow_allowed"]
    assert disagreements == 2  # Berlin and greeting alice: the draft would refuse both
