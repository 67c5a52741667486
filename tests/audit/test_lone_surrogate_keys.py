"""A lone surrogate in an argument's *key* (valid JSON: `{"k\\ud800ey": 1}`, sent over
HTTP by any caller) was recorded with `?` in its place: the value rule (`<redacted:not-utf8
...>`) looked at values only, so the record held a key the decision never saw, unlisted in
`args_redacted`, two such keys could collapse into one, and `args_sha256` was the digest
of the key as sent, not as recorded (found in review). Such a key is now recorded as a key
marker, as a key shaped like a credential is: listed, so replay treats it as unknown."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import httpx
from fastmcp import FastMCP
from servers import rpc_headers, rpc_meta, serving_in_thread

from guard import GuardMiddleware
from guard.audit import AuditLog, open_store
from guard.audit.redact import SECRET_MARK, Redactor
from guard.identity import NoAuthenticator

LOW, HIGH = "\ud800", "\udfff"  # two lone surrogates (named: linters take them for one)


def test_a_key_that_is_not_utf8_becomes_a_listed_marker() -> None:
    clean, redacted = Redactor().redact(
        {"city": "Paris", f"k{LOW}ey": 1, "nested": {HIGH: "v", LOW: {"a": 1}}}
    )
    assert clean == {
        "city": "Paris",
        "<redacted:key 1>": SECRET_MARK,
        "nested": {"<redacted:key 1>": SECRET_MARK, "<redacted:key 2>": SECRET_MARK},
    }
    assert redacted == ("<redacted:key 1>", "nested.<redacted:key 1>", "nested.<redacted:key 2>")
    json.dumps(clean).encode()  # recordable as UTF-8


def test_keys_that_are_not_utf8_are_markers_when_too_big_too() -> None:
    keys, paths = Redactor().too_big({"a": 1, LOW: 2})
    assert list(keys) == ["a", "<redacted:key 1>"] and paths == ("a", "<redacted:key 1>")


def test_a_surrogate_key_sent_over_http_is_not_recorded_as_a_question_mark(
    tmp_path: Path,
) -> None:
    mcp = FastMCP("surrogate-keys")

    @mcp.tool
    def echo(data: dict[str, int]) -> str:
        return str(len(data))

    @mcp.prompt
    def greet(name: str) -> str:
        return f"hi {name}"

    store = tmp_path / "store"
    mw = GuardMiddleware(
        {"name": "p", "rules": [{"name": "r", "effect": "allow", "actions": ["*"]}]},
        authenticator=NoAuthenticator(),
        audit=AuditLog(store),
        telemetry=False,
    )
    mcp.add_middleware(mw)
    calls = [
        ("tools/call", {"name": "echo", "arguments": {"data": {f"k{LOW}ey": 1, f"k{HIGH}ey": 2}}}),
        ("prompts/get", {"name": "greet", "arguments": {"name": "x", LOW: "y"}}),
    ]
    with serving_in_thread(mcp.http_app()) as port:
        for method, params in calls:
            body = {"jsonrpc": "2.0", "id": 1, "method": method,
                    "params": {**params, "_meta": rpc_meta()}}  # fmt: skip
            headers = {**rpc_headers(method, params["name"]), "content-type": "application/json"}
            # ASCII JSON: the surrogates travel as `\\ud800`, as any client may send them
            url = f"http://127.0.0.1:{port}/mcp"
            response = httpx.post(url, content=json.dumps(body), headers=headers, timeout=20)
            assert response.status_code == 200 and '"error"' not in response.text, response.text
    mw.close()
    with open_store(store) as con:
        rows = con.execute(
            "SELECT method, args, args_redacted, args_sha256 FROM decisions "
            "WHERE method IN ('tools/call', 'prompts/get') ORDER BY method DESC"
        ).fetchall()
    assert [r[0] for r in rows] == ["tools/call", "prompts/get"], rows
    (_, call_args, call_redacted, call_sha), (_, get_args, get_redacted, _) = rows
    assert "?" not in call_args and "?" not in get_args, (call_args, get_args)
    assert json.loads(call_args) == {
        "data": {"<redacted:key 1>": SECRET_MARK, "<redacted:key 2>": SECRET_MARK}
    }
    assert call_redacted == ["data.<redacted:key 1>", "data.<redacted:key 2>"]
    assert json.loads(get_args) == {"name": "x", "<redacted:key 1>": SECRET_MARK}
    assert get_redacted == ["<redacted:key 1>"]
    # README: args_sha256 is the digest of the arguments as recorded
    assert call_sha == hashlib.sha256(call_args.encode()).hexdigest()
