"""Arguments and claims nested deeper than Python's recursion allows a recursive walk:
a hostile caller sends `{"a": {"a": ...}}` 500 levels deep (JSON parsers of MCP servers
accept ~990). Redaction must not throw there: a denied call that leaves no record loses
the one record an auditor needs, and a record the writer cannot encode is lost too."""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path
from typing import Any

import httpx
from audit_kit import ALICE, event
from fastmcp import FastMCP
from servers import rpc_headers, rpc_meta, serving_in_thread

from guard import GuardMiddleware, Principal
from guard.audit import AuditLog, open_store
from guard.audit.redact import Redactor


def nested(depth: int, leaf: Any = "leaf") -> Any:
    value = leaf
    for _ in range(depth):
        value = {"a": value}
    return value


def test_redaction_cuts_what_is_nested_too_deep_and_lists_it() -> None:
    args = {"x": nested(sys.getrecursionlimit()), "city": "Paris"}
    clean, redacted = Redactor().redact(args)
    assert clean is not None and clean["city"] == "Paris"
    [path] = redacted
    assert path.startswith("x.a.a.") and path.count(".") < 200
    # the cut value is a marker, reached by the listed path
    value: Any = clean
    for key in path.split("."):
        value = value[key]
    assert value == "<redacted:too-deep>"
    json.dumps(clean)  # encodable as recorded


def test_lists_count_as_levels_too() -> None:
    deep: Any = "leaf"
    for _ in range(2000):
        deep = [deep]
    clean, redacted = Redactor().redact({"x": deep})
    assert len(redacted) == 1 and redacted[0].startswith("x.0.0.")
    json.dumps(clean)


def test_shallow_nesting_is_recorded_as_sent() -> None:
    args = {"x": nested(20, "hunter2-not-a-secret")}
    clean, redacted = Redactor().redact(args)
    assert clean is args and redacted == ()


def test_deep_arguments_and_claims_leave_their_records(tmp_path: Path) -> None:
    log = AuditLog(tmp_path / "store")
    deep_claims = dataclasses.replace(ALICE, claims={"org": nested(600)})
    log.append(event(1, args={"x": nested(600)}))
    log.append(event(2, principal=deep_claims))
    log.close()
    assert log.stats()["append_errors"] == 0
    with open_store(tmp_path / "store") as con:
        rows = con.execute(
            "SELECT request_id, args_redacted, inputs_redacted FROM decisions ORDER BY request_id"
        ).fetchall()
    assert len(rows) == 2
    assert rows[0][1] and rows[0][1][0].startswith("x.a.a")
    assert rows[1][2] and rows[1][2][0].startswith("claims.org.a.a")


async def test_a_guarded_call_with_deep_arguments_runs_and_is_recorded(tmp_path: Path) -> None:
    app = FastMCP("deep")

    @app.tool
    def echo(x: dict[str, Any]) -> str:
        return "ran"

    policy = {"name": "p", "rules": [{"name": "r", "effect": "allow",
              "tools": {"patterns": ["*"]}, "actions": ["list", "call"]}]}  # fmt: skip
    guard = GuardMiddleware(policy, principal=Principal("alice"), audit=tmp_path / "store")
    app.add_middleware(guard)
    depth = 500  # built as text: json.dumps would recurse 500 levels on top of the test
    arguments = '{"x":' + '{"a":' * depth + '"leaf"' + "}" * depth + "}"
    body = (
        '{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"echo",'
        f'"arguments":{arguments},"_meta":{json.dumps(rpc_meta())}}}}}'
    )
    headers = rpc_headers("tools/call", "echo")
    with serving_in_thread(app.http_app()) as port:
        async with httpx.AsyncClient(timeout=30) as client:
            reply = await client.post(f"http://127.0.0.1:{port}/mcp", content=body, headers=headers)
    guard.close()
    assert reply.status_code == 200
    assert '"ran"' in reply.text, reply.text[:300]
    with open_store(tmp_path / "store") as con:
        [(allowed, redacted, status)] = con.execute(
            "SELECT allowed, args_redacted, status FROM decision_log WHERE request_id = '7'"
        ).fetchall()
    assert allowed and redacted[0].startswith("x.a.a") and status == "ok"
