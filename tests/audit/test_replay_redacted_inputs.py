"""Inputs other than the arguments are redacted too (a secret-shaped claim, a sensitive key
in a tool's meta or the request context, a template parameter in a URI), and were stored as
marker text without saying so: replay then decided on `<redacted:secret>` as if it were the
value, and a deny rule that fired live stopped firing. `inputs_redacted` now lists them, so
replay treats them as unknown; rows written before the column existed keep their hashes."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path
from typing import Any

import duckdb
import pytest
from audit_kit import ALICE, event, inline_listings
from fastmcp import Client, FastMCP
from fastmcp.exceptions import ToolError
from mcp.shared.exceptions import MCPError
from replay_helpers import again, recorded, redecide, replayed, rows
from test_replayable import _replayed

from guard import GuardMiddleware, Principal, load_policies
from guard.audit import AuditLog, open_store, verify
from guard.audit.schema import ADDED_COLUMNS, first_columns

POLICY = """
name: inputs
default_effect: allow
rules:
  - name: no_bearer_sessions
    effect: deny
    tools: {names: [report]}
    conditions: [{field: user.claims.session, operator: contains, value: Bearer}]
  - name: no_test_tokens
    effect: deny
    tools: {names: [export]}
    conditions: [{field: tool.metadata.token, operator: equals, value: t-1}]
  - name: no_s3cr3t_vault
    effect: deny
    resource_templates: {names: [vault]}
    conditions: [{field: request.args.token, operator: equals, value: s3cr3t}]
"""
SESSION = "Bearer abcdefghijklmnopqrstuvwxyz0123"


async def test_redacted_claims_meta_and_uris_are_listed_and_replay_as_unknown(
    tmp_path: Path,
) -> None:
    store = tmp_path / "s"
    mcp: FastMCP[Any] = FastMCP("inputs")

    @mcp.tool
    def report() -> str:
        return "report"

    @mcp.tool(meta={"token": "t-1", "owner": "ops"})
    def export() -> str:
        return "export"

    @mcp.resource("vault://{token}/data", name="vault")
    def vault(token: str) -> str:
        return f"data of {token}"

    bob = Principal("bob", ("user",), claims={"team": "x", "session": SESSION})
    mw = GuardMiddleware(POLICY, principal=bob, audit=AuditLog(store), telemetry=False)
    mcp.add_middleware(mw)
    async with Client(mcp) as client:
        for tool in ("report", "export"):
            with pytest.raises(ToolError, match="Unknown tool"):
                await client.call_tool(tool, {})
        with pytest.raises(MCPError, match="Resource not found"):
            await client.read_resource("vault://s3cr3t/data")
        await client.list_tools()
    mw.close()

    by_method = {}
    for row in rows(store):
        by_method.setdefault((row["method"], row["resource"]), []).append(row)
    [reported] = by_method["tools/call", "report"]
    [exported] = by_method["tools/call", "export"]
    [read] = by_method["resources/read", "vault"]
    assert json.loads(reported["claims"])["session"] == "<redacted:secret>"
    assert reported["inputs_redacted"] == ["claims.session"]
    assert exported["inputs_redacted"] == ["resource_meta.token", "claims.session"]
    assert read["resource_uri"] == "vault://<redacted:path>/data"
    assert read["inputs_redacted"] == ["resource_uri", "claims.session"]
    # listed: every item of the listing names the claim the listing's principal lost
    listed = by_method["tools/list", "report"] + by_method["tools/list", "export"]
    assert [r["inputs_redacted"] for r in listed] == [
        ["claims.session"],
        ["resource_meta.token", "claims.session"],
    ]

    for row in (reported, exported, read):
        assert recorded(row)[0] is False
        # replayed as unknown, the deny rule still applies (fail closed) ...
        assert again(redecide(store, row))[:2] == (False, "rule"), row["resource"]
        assert again(redecide(store, row))[2] == row["rule"]
    # ... where the marker text taken as the value would have allowed them
    with open_store(store) as db:
        policies = load_policies(db.policy_texts(reported["policy_hash"]))
    assert policies.decide(_replayed(reported)).allowed
    assert policies.decide(_replayed(exported)).allowed
    assert verify(store).ok


def test_redacted_context_values_are_listed_for_decisions_and_listings(tmp_path: Path) -> None:
    store = tmp_path / "s"
    log = AuditLog(store)
    ev = event(1, principal=ALICE)
    context = {"transport": "http", "headers": {"cookie": "sid=1"}, "note": SESSION}
    request = dataclasses.replace(ev.request, context=context)
    log.append(dataclasses.replace(ev, request=request))
    listed = dataclasses.replace(ev, decision_id="L.1", request=dataclasses.replace(
        request, args={}, action="list"))  # fmt: skip
    log.append_listing("L", [listed])
    log.close()
    got = {r["decision_id"]: r for r in rows(store)}
    for did in (ev.decision_id, "L.1"):
        assert got[did]["inputs_redacted"] == ["context.headers.cookie", "context.note"]
        assert json.loads(got[did]["context"])["headers"]["cookie"] == "<redacted:path>"
        assert replayed(got[did]).context["transport"] == "http"
    assert verify(store).ok


def _as_first_released(store: Path) -> None:
    """Rewrite every segment of `store` as the first release wrote it: without the columns
    and item fields added since (`first_columns`)."""
    con = duckdb.connect()
    for table in ("decisions", "listings"):
        names = [name for name, _ in first_columns(table)]
        items = "items" in names
        for path in (store / table).glob("*.parquet"):
            cols = ", ".join(
                f"[struct_pack({', '.join(f'{f} := i.{f}' for f in _item_names())}) "
                "FOR i IN items] AS items"
                if name == "items" and items
                else name
                for name in names
            )
            tmp = path.with_suffix(".old")
            con.execute(
                f"COPY (SELECT {cols} FROM read_parquet('{path}')) TO '{tmp}' (FORMAT parquet)"
            )
            tmp.replace(path)
    con.close()


def _item_names() -> list[str]:
    from guard.audit.schema import LISTING_ITEM_COLUMNS

    return [n for n, _ in LISTING_ITEM_COLUMNS if n not in ADDED_COLUMNS]


def test_segments_written_before_inputs_redacted_read_and_verify(tmp_path: Path) -> None:
    store = tmp_path / "s"
    log = inline_listings(AuditLog(store))  # as the first release wrote listings
    log.append(event(1))
    log.append_listing("L", [event(2)])
    log.close()
    _as_first_released(store)
    with duckdb.connect() as con:  # really without the new column and item field
        for table in ("decisions", "listings"):
            [path] = (store / table).glob("*.parquet")
            described = con.execute(f"DESCRIBE SELECT * FROM read_parquet('{path}')").fetchall()
            assert "inputs_redacted" not in str(described), table
    report = verify(store)
    assert report.ok, report.first
    assert report.rows == 2
    with open_store(store) as db:
        got = db.execute("SELECT inputs_redacted FROM decisions").fetchall()
        assert got == [(None,), (None,)]
        assert db.execute("SELECT inputs_redacted FROM decision_rows").fetchall() == [(None,)]
    # a new writer's rows sit next to the old ones
    log = AuditLog(store)
    log.append(event(3, principal=Principal("eve", (), claims={"session": SESSION})))
    log.close()
    with open_store(store) as db:
        got = db.execute("SELECT inputs_redacted FROM decisions ORDER BY ts").fetchall()
    assert got == [(None,), (None,), (["claims.session"],)]
    assert verify(store).ok


def test_dropping_inputs_redacted_from_a_row_is_detected(tmp_path: Path) -> None:
    """Left out when NULL, but covered by the hash when there: erasing what a row says was
    redacted (so that replay would take the marker for the value) is an edit."""
    store = tmp_path / "s"
    log = AuditLog(store)
    log.append(event(1, principal=Principal("eve", (), claims={"session": SESSION})))
    log.close()
    [path] = (store / "decisions").glob("*.parquet")
    edited = tmp_path / "edited.parquet"
    with duckdb.connect() as con:
        con.execute(
            f"COPY (SELECT * REPLACE (NULL::VARCHAR[] AS inputs_redacted) "
            f"FROM read_parquet('{path}')) TO '{edited}'"
        )
    shutil.copyfile(edited, path)
    report = verify(store)
    assert not report.ok
    assert "edited" in str(report.first) or "hash" in str(report.first), report.first


async def test_a_redacted_key_holding_a_dot_replays_as_that_key(tmp_path: Path) -> None:
    """`{"b.c": <secret>}` next to `{"b": {"c": "blue"}}` were both listed as `b.c`:
    replay marked the nested value unknown instead, and a deny rule on it, which did not
    fire live, denied on replay (fail closed)."""
    store = tmp_path / "s"
    policy = """
name: colours
default_effect: allow
rules:
  - name: no_red
    effect: deny
    conditions: [{field: tool.args.a.b.c, operator: equals, value: red}]
"""
    mcp: FastMCP[Any] = FastMCP("dots")

    @mcp.tool
    def paint(a: dict[str, Any]) -> str:
        return "painted"

    mw = GuardMiddleware(policy, principal=ALICE, audit=AuditLog(store), telemetry=False)
    mcp.add_middleware(mw)
    async with Client(mcp) as client:
        await client.call_tool("paint", {"a": {"b": {"c": "blue"}, "b.c": SESSION}})
    mw.close()
    [row] = rows(store, "method = 'tools/call'")
    assert row["args_redacted"] == ["a.b\\.c"]
    assert again(redecide(store, row))[:2] == recorded(row)[:2] == (True, "default")
    assert replayed(row).args["a"]["b"]["c"] == "blue"
