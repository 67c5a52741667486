"""A credential or identity header sent twice in one request is refused, over real HTTP.

Starlette keeps every copy of a repeated header; which one an authenticator believes is an
accident of code (a dict keeps the last, `Headers.get` and FastMCP's own bearer check take
the first). Behind a proxy that appends its header instead of replacing the client's, one
copy is the client's claim and the other the proxy's word, and nothing says which is which:
believing either lets a client choose its identity. Every authenticator refuses such a
request (`ambiguous_credentials`), and the denial is recorded like any other.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
from fastmcp import FastMCP
from fastmcp.server.auth.providers.jwt import JWTVerifier
from identity_kit import HS_SECRET, KeyPair, claims, mint, remember
from servers import rpc_headers, rpc_meta, serving_in_thread

from guard import GuardMiddleware
from guard.audit import open_store
from guard.identity import (
    ApiKeyAuthenticator,
    Authenticator,
    FastMCPTokenAuthenticator,
    HeaderAuthenticator,
    JWTAuthenticator,
    NoAuthenticator,
)

POLICY = {"name": "p", "rules": [{"name": "anyone", "effect": "allow", "tools": {"names": ["echo"]},
                                  "actions": ["call"]}]}  # fmt: skip
KEY_A = remember("repeated-key-alice-0001")
KEY_B = remember("repeated-key-bob-00002")
PROXY_SECRET = remember("repeated-proxy-secret-0003")


def _call(port: int, sent: list[tuple[str, str]]) -> httpx.Response:
    params = {"name": "echo", "arguments": {"text": "y"}, "_meta": rpc_meta()}
    body = {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": params}
    headers = [*rpc_headers("tools/call", "echo").items(), *sent]
    return httpx.post(f"http://127.0.0.1:{port}/mcp", json=body, headers=headers, timeout=20)


def _decide(
    authenticator: Authenticator, requests: list[list[tuple[str, str]]], store: Path, **server: Any
) -> list[tuple[Any, ...]]:
    app = FastMCP("repeated", **server)

    @app.tool
    def echo(text: str) -> str:
        return text

    guard = GuardMiddleware(POLICY, authenticator=authenticator, audit=str(store), telemetry=False)
    app.add_middleware(guard)
    with serving_in_thread(app.http_app()) as port:
        for sent in requests:
            assert _call(port, sent).status_code == 200
    guard.audit.close()
    with open_store(store) as s:
        return s.sql(
            "SELECT user_id, allowed, reason, key_id FROM decisions"
            " WHERE action = 'call' ORDER BY ts"
        ).fetchall()


def _refused(rows: list[tuple[Any, ...]]) -> list[str]:
    return [r[2] for r in rows if not r[1]]


def test_a_repeated_api_key_or_agent_header_is_refused(tmp_path: Path) -> None:
    auth = ApiKeyAuthenticator({KEY_A: {"user_id": "alice", "roles": ["user"]},
                                KEY_B: {"user_id": "bob", "roles": ["admin"]}})  # fmt: skip
    rows = _decide(auth, [
        [("X-API-Key", KEY_A)],  # control: one key, one principal
        [("X-API-Key", KEY_A), ("X-API-Key", KEY_B)],
        [("X-API-Key", KEY_A), ("X-Agent-Id", "a1"), ("X-Agent-Id", "a2")],
    ], tmp_path / "a.duckdb")  # fmt: skip
    assert rows[0][:3] == ("alice", True, "rule")
    assert _refused(rows) == ["ambiguous_credentials"] * 2
    assert all(KEY_A not in str(r) and KEY_B not in str(r) for r in rows)


def test_a_repeated_bearer_token_is_refused(tmp_path: Path) -> None:
    alice, bob = mint(claims(sub="alice")), mint(claims(sub="bob", roles=["admin"]))
    rows = _decide(JWTAuthenticator(HS_SECRET), [
        [("Authorization", f"Bearer {alice}")],
        [("Authorization", f"Bearer {alice}"), ("Authorization", f"Bearer {bob}")],
    ], tmp_path / "j.duckdb")  # fmt: skip
    assert rows[0][:3] == ("alice", True, "rule")
    assert _refused(rows) == ["ambiguous_credentials"]


def test_repeated_identity_headers_from_a_trusted_proxy_are_refused(tmp_path: Path) -> None:
    auth = HeaderAuthenticator(trusted_proxies=["10.0.0.0/8"], shared_secret=PROXY_SECRET)
    trusted = ("X-Guard-Proxy-Secret", PROXY_SECRET)
    rows = _decide(auth, [
        [trusted, ("X-User-Id", "bob")],
        # a client's own headers first, then the ones an appending proxy adds
        [trusted, ("X-User-Id", "eve"), ("X-User-Id", "bob")],
        [trusted, ("X-User-Id", "bob"), ("X-User-Roles", "admin"), ("X-User-Roles", "user")],
        [trusted, ("X-Guard-Proxy-Secret", "not-the-secret-at-all"), ("X-User-Id", "bob")],
    ], tmp_path / "h.duckdb")  # fmt: skip
    assert rows[0][:3] == ("bob", True, "rule")
    assert _refused(rows) == ["ambiguous_credentials"] * 3


@pytest.mark.parametrize("order", ["alice first", "bob first"])
def test_a_repeated_token_fastmcp_verified_is_refused(
    rsa_key: KeyPair, tmp_path: Path, order: str
) -> None:
    verifier = JWTVerifier(public_key=rsa_key.public_pem.decode(), algorithm="RS256")
    alice = mint(claims(sub="alice"), rsa_key.private, "RS256")
    bob = mint(claims(sub="bob"), rsa_key.private, "RS256")
    tokens = [alice, bob] if order == "alice first" else [bob, alice]
    rows = _decide(FastMCPTokenAuthenticator(), [
        [("Authorization", f"Bearer {alice}")],
        [("Authorization", f"Bearer {t}") for t in tokens],
    ], tmp_path / "f.duckdb", auth=verifier)  # fmt: skip
    assert rows[0][:3] == ("alice", True, "rule")
    assert _refused(rows) == ["ambiguous_credentials"]


def test_a_repeated_agent_header_without_authentication_is_refused(tmp_path: Path) -> None:
    # the agent id is self-declared here, but a proxy in front may be the one declaring it
    rows = _decide(NoAuthenticator(), [
        [("X-Agent-Id", "a1")],
        [("X-Agent-Id", "a1"), ("X-Agent-Id", "a2")],
    ], tmp_path / "n.duckdb")  # fmt: skip
    assert rows[0][:3] == ("anonymous", True, "rule")
    assert _refused(rows) == ["ambiguous_credentials"]
