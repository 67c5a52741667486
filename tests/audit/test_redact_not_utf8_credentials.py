"""Text that is not UTF-8 (a lone surrogate: a client that cut a string inside an emoji
sends one) is recorded as a marker showing the text escaped, `<redacted:not-utf8 ...>`,
and that marker was made before the text was searched for credential shapes: a bearer
token or an API key next to a lone surrogate was recorded, traced and shown in clear
inside the marker, in arguments, tool names, request, session and agent ids alike
(found in review). A credential shape in such a text now redacts it whole, as in any
other value."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
from fastmcp import FastMCP
from servers import rpc_headers, rpc_meta, serving_in_thread

from guard import GuardMiddleware
from guard.audit import AuditLog
from guard.audit.redact import SECRET_MARK, Redactor
from guard.identity import NoAuthenticator

TOKEN = "sk-live-0123456789abcdefABCDEF"
BEARER = "Bearer abcdefghijklmnopqrstuvwxyz0123456789"


def test_a_credential_beside_a_lone_surrogate_is_redacted_whole() -> None:
    r = Redactor()
    for text in (f"{TOKEN}\ud800", f"x \ud800 {BEARER}", f"\udfff{TOKEN}"):
        assert r.text(text) == SECRET_MARK, text
        assert r.redact({"q": text}) == ({"q": SECRET_MARK}, ("q",))
    # without a credential, still escaped in its marker, not stored as `?`
    assert r.text("req-\ud800") == "<redacted:not-utf8 req-\\ud800>"
    # too long to search: its size is said, not its text
    long = "x" * 5000 + "\ud800" + TOKEN
    assert r.text(long).startswith("<redacted:oversized chars=5031 ")
    head = TOKEN + "\ud800" + "x" * 5000
    assert TOKEN not in r.text(head)


def test_no_credential_beside_a_lone_surrogate_reaches_the_store(tmp_path: Path) -> None:
    mcp = FastMCP("not-utf8")

    @mcp.tool
    def search(q: str) -> str:
        return "found"

    store = tmp_path / "store"
    mw = GuardMiddleware(
        {"name": "p", "rules": [{"name": "r", "effect": "allow", "actions": ["*"]}]},
        authenticator=NoAuthenticator(),
        audit=AuditLog(store),
        telemetry=False,
    )
    mcp.add_middleware(mw)
    # an argument and the request id (the client's to choose)
    params = {"name": "search", "arguments": {"q": f"{TOKEN}\ud800"}, "_meta": rpc_meta()}
    body = {"jsonrpc": "2.0", "id": f"{TOKEN}\ud800", "method": "tools/call", "params": params}
    headers = {**rpc_headers("tools/call", "search"), "content-type": "application/json"}
    with serving_in_thread(mcp.http_app()) as port:
        # ASCII JSON: the surrogate travels as `\\ud800`, as any client may send it
        url = f"http://127.0.0.1:{port}/mcp"
        response = httpx.post(url, content=json.dumps(body), headers=headers, timeout=20)
        assert response.status_code == 200 and "found" in response.text, response.text
    mw.close()
    found = []
    for path in store.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            if TOKEN.encode() in data or TOKEN[8:].encode() in data:
                found.append(path)
    assert not found, found
    assert mw.audit is not None and mw.audit.stats()["written_decisions"] >= 1
