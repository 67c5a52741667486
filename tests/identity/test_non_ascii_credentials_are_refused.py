"""A credential compared with a header value must be printable ASCII, or it is refused at
configuration.

HTTP carries header values as bytes; Starlette decodes them as latin-1. A key configured as
`clé-…` was hashed as UTF-8, so a client sending it in UTF-8 (curl, httpx with bytes, most
terminals) was refused as `invalid_api_key` forever, while one sending latin-1 bytes got in:
whether a configured key worked depended on the client's encoding. The same held for a
trusted proxy's `shared_secret`. Such a credential is now refused where it is configured,
with a message that names the position, never the secret.
"""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from fastmcp import FastMCP
from identity_kit import remember
from servers import rpc_headers, rpc_meta, serving_in_thread

from guard import GuardMiddleware
from guard.audit import open_store
from guard.identity import ApiKeyAuthenticator, HeaderAuthenticator, hash_api_key

KEY = remember("ascii-key-for-the-server-01")
POLICY = {"name": "p", "rules": [{"name": "anyone", "effect": "allow", "tools": {"names": ["echo"]},
                                  "actions": ["call"]}]}  # fmt: skip


@pytest.mark.parametrize("key", ["clé-secrète-0001", "key-with-\x00-nul-01", "tab\tinside-key-01"])
def test_an_api_key_that_is_not_printable_ascii_is_refused_at_configuration(key: str) -> None:
    with pytest.raises(ValueError, match="printable ASCII") as caught:
        ApiKeyAuthenticator({"fine-key-000001": ["user"], key: ["admin"]})
    assert key not in str(caught.value) and "keys[1]" in str(caught.value)
    with pytest.raises(ValueError, match="printable ASCII") as caught:
        hash_api_key(key)
    assert key not in str(caught.value)


def test_a_shared_secret_that_is_not_printable_ascii_is_refused_at_configuration() -> None:
    with pytest.raises(ValueError, match="printable ASCII") as caught:
        HeaderAuthenticator(shared_secret="é" * 16)
    assert "é" not in str(caught.value)


def test_a_non_ascii_key_over_http_is_a_recorded_refusal(tmp_path: Path) -> None:
    app = FastMCP("keys")

    @app.tool
    def echo(text: str) -> str:
        return text

    store = tmp_path / "a.duckdb"
    guard = GuardMiddleware(
        POLICY, authenticator=ApiKeyAuthenticator({KEY: ["user"]}), audit=str(store),
        telemetry=False,
    )  # fmt: skip
    app.add_middleware(guard)
    params = {"name": "echo", "arguments": {"text": "y"}, "_meta": rpc_meta()}
    body = {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": params}
    sent = [remember("clé-secrète-0001").encode(), b"\xff\xfe\x80-not-utf8", KEY.encode()]
    with serving_in_thread(app.http_app()) as port:
        for value in sent:
            headers = [*rpc_headers("tools/call", "echo").items(), ("X-API-Key", value)]
            reply = httpx.post(f"http://127.0.0.1:{port}/mcp", json=body, headers=headers)
            assert reply.status_code == 200
    guard.audit.close()
    with open_store(store) as s:
        rows = s.sql("SELECT allowed, reason FROM decisions ORDER BY ts").fetchall()
        text = str(s.sql("SELECT * FROM decisions").fetchall())
    assert rows == [(False, "invalid_api_key"), (False, "invalid_api_key"), (True, "rule")]
    assert "secrète" not in text and "secrÃ" not in text and KEY not in text


def test_key_hash_refuses_a_key_no_header_carries() -> None:
    from click.testing import CliRunner

    from guard.identity.cli import key

    secret = remember("clé-secrète-0002")
    result = CliRunner().invoke(key, ["hash"], input=secret + "\n")
    assert result.exit_code == 2, result.output  # a usage error, not a traceback
    assert "printable ASCII" in result.output and secret not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
