"""A real guarded HTTP server records every decision; an API key and a bearer token used
against it are found nowhere in the store, the spill directory or the server's log."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from audit_kit import RAW_API_KEY, REPO, bearer_token, scan_for
from fastmcp import Client
from fastmcp.exceptions import ToolError
from servers import running_server

from guard.audit import open_store, verify

HERE = Path(__file__).parent


def server_env(store: Path, **extra: str) -> dict[str, str]:
    path = os.pathsep.join([str(REPO), str(REPO / "tests"), str(HERE)])
    return {"MCP_GUARD_AUDIT": str(store), "PYTHONPATH": path, **extra}


async def test_no_credential_reaches_the_store_or_the_logs(tmp_path: Path) -> None:
    store = tmp_path / "store"
    token = bearer_token("bob")
    with running_server(HERE / "audit_server.py", env=server_env(store)) as srv:
        as_key = {"mcpServers": {"s": {"url": srv.url, "headers": {"X-API-Key": RAW_API_KEY}}}}
        async with Client(as_key) as client:
            tools = await client.list_tools()
            assert {t.name for t in tools} == {"echo", "add"}
            await client.call_tool("echo", {"text": f"my key is {RAW_API_KEY}"})
            await client.call_tool("echo", {"text": f"Bearer {token}"})
            assert (await client.call_tool("add", {"a": 2, "b": 3})).data == 5
            with pytest.raises(ToolError):
                await client.call_tool("hidden_1", {"x": 1})
        as_jwt = {
            "mcpServers": {"s": {"url": srv.url, "headers": {"Authorization": f"Bearer {token}"}}}
        }
        async with Client(as_jwt) as client:
            await client.call_tool("echo", {"text": token})
        log_text = srv.output()
    with open_store(store) as con:
        cur = con.execute("SELECT * FROM decision_log ORDER BY ts")
        names = [d[0] for d in cur.description]
        rows = [dict(zip(names, r, strict=True)) for r in cur.fetchall()]
    calls = [r for r in rows if r["method"] == "tools/call"]
    lists = [r for r in rows if r["method"] == "tools/list"]
    # each listing (the client also lists on its own) leaves 10 records, 2 of them allowed
    by_request: dict[tuple[str, str], list[bool]] = {}
    for r in lists:
        by_request.setdefault((r["session_id"], r["request_id"]), []).append(r["allowed"])
    assert by_request and all(len(v) == 10 and sum(v) == 2 for v in by_request.values())
    assert [r["resource"] for r in calls] == ["echo", "echo", "add", "hidden_1", "echo"]
    assert [r["status"] for r in calls] == ["ok", "ok", "ok", None, "ok"]
    assert {r["user_id"] for r in calls} == {"alice", "bob"}
    assert {r["auth_method"] for r in calls} == {"api_key", "jwt"}
    assert all(
        r["key_id"] and RAW_API_KEY not in r["key_id"] for r in calls if r["user_id"] == "alice"
    )
    assert [r["args_redacted"] for r in calls] == [["text"], ["text"], [], [], ["text"]]
    assert json.loads(calls[0]["args"]) == {"text": "<redacted:secret>"}
    # a token's allow-listed claims and the request context are JSON objects replay can use
    assert [json.loads(r["claims"]).keys() for r in calls if r["user_id"] == "bob"] == [
        {"sub", "exp"}
    ]
    for r in calls:
        context = json.loads(r["context"])
        assert context == {"server": context["server"], "session_id": r["session_id"],
                           "transport": "http"}  # fmt: skip
    assert verify(store).ok
    # the credentials appear nowhere: decoded rows, raw bytes of every file, the server log
    needles = [RAW_API_KEY, token, token.split(".")[2]]
    decoded = json.dumps(rows, default=str)
    assert not [n for n in needles if n in decoded]
    assert not scan_for(store, [n.encode() for n in needles])
    assert not [n for n in needles if n in log_text]


async def test_a_request_id_is_recorded_bounded_and_without_secrets(tmp_path: Path) -> None:
    """A JSON-RPC id is the client's to choose: one shaped like a credential is recorded
    as the secret marker, one of 100,000 characters as its length and digest; the client
    still gets its own id back."""
    import hashlib

    import httpx

    store = tmp_path / "store"
    token = bearer_token("bob")
    huge = "r" * 100_000
    ids = ["call-7", RAW_API_KEY, f"Bearer {token}", huge, -3]
    with running_server(HERE / "audit_server.py", env=server_env(store)) as srv:
        headers = {"X-API-Key": RAW_API_KEY, "Accept": "application/json, text/event-stream"}
        async with httpx.AsyncClient(timeout=30) as http:

            async def rpc(body: dict[str, Any]) -> httpx.Response:
                resp = await http.post(srv.url, json=body, headers=headers)
                resp.raise_for_status()
                return resp

            init = await rpc({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
                "protocolVersion": "2025-06-18", "capabilities": {},
                "clientInfo": {"name": "raw", "version": "1"}}})  # fmt: skip
            headers["mcp-session-id"] = init.headers["mcp-session-id"]
            headers["mcp-protocol-version"] = "2025-06-18"
            await rpc({"jsonrpc": "2.0", "method": "notifications/initialized"})
            for request_id in ids:
                params = {"name": "add", "arguments": {"a": 1, "b": 2}}
                resp = await rpc(
                    {"jsonrpc": "2.0", "id": request_id, "method": "tools/call", "params": params}
                )
                text = resp.text
                answer = json.loads(text[text.index("{") :].splitlines()[0])  # JSON or SSE
                assert answer["id"] == request_id and "result" in answer
        log_text = srv.output()
    with open_store(store) as con:
        recorded = [
            r[0]
            for r in con.execute(
                "SELECT request_id FROM decisions WHERE method = 'tools/call' ORDER BY ts"
            ).fetchall()
        ]
    digest = hashlib.sha256(huge.encode()).hexdigest()
    assert recorded == [
        "call-7",
        "<redacted:secret>",
        "<redacted:secret>",
        f"<redacted:oversized chars=100000 sha256={digest}>",
        "-3",
    ]
    needles = [RAW_API_KEY, token.split(".")[2], huge[:5000]]
    assert not scan_for(store, [n.encode() for n in needles])
    assert not [n for n in needles if n in log_text]
    assert verify(store).ok
