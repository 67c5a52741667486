"""The whole attack matrix over real HTTP: a guarded server whose JWT keys come from a JWKS
endpoint the test serves on 127.0.0.1; every attack is denied, and the decision store
records each denial with its reason."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from pathlib import Path

from identity_kit import (
    JWKSServer,
    KeyPair,
    b64url,
    call,
    claims,
    forge,
    leaks,
    masked,
    mint,
    records,
    remember,
    rsa_pair,
)
from servers import running_server

HERE = Path(__file__).resolve().parent
API_KEY = remember("matrix-api-key-000123")


async def test_attack_matrix_is_denied_and_recorded(rsa_key: KeyPair, tmp_path: Path) -> None:
    store = tmp_path / "audit.duckdb"
    now = int(time.time())
    kid = {"kid": rsa_key.kid}

    def rs(**extra: object) -> str:
        payload = claims(**{"aud": "mcp-e2e", "iss": "https://idp.test", "tenant": "acme", **extra})
        return mint(payload, rsa_key.private, "RS256", kid)

    def bearer(token: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {token}"}

    # HS256 "signed" with the server's RSA public key, as an attacker who read the JWKS would
    head = b64url(json.dumps({"alg": "HS256", **kid}).encode())
    body = b64url(json.dumps(claims(aud="mcp-e2e", iss="https://idp.test", tenant="x")).encode())
    mac = hmac.new(rsa_key.public_pem, f"{head}.{body}".encode(), hashlib.sha256).digest()
    confused = remember(f"{head}.{body}.{b64url(mac)}")
    good_head, _, good_sig = rs().split(".")
    admin_body = b64url(json.dumps(claims(roles=["admin"], tenant="acme")).encode())
    tampered = remember(f"{good_head}.{admin_body}.{good_sig}")
    stranger = rsa_pair("stranger")

    cases: list[tuple[str, dict[str, str], str]] = [
        ("valid token (control)", bearer(rs()), "rule"),
        (
            "alg none",
            bearer(forge({"alg": "none", **kid}, claims(aud="mcp-e2e"))),
            "disallowed_algorithm",
        ),
        ("HS256 with the RSA public key", bearer(confused), "disallowed_algorithm"),
        ("expired", bearer(rs(iat=now - 600, exp=now - 120)), "expired"),
        ("not yet valid", bearer(rs(nbf=now + 600)), "not_yet_valid"),
        ("wrong audience", bearer(rs(aud="another-api")), "invalid_audience"),
        ("wrong issuer", bearer(rs(iss="https://evil.test")), "invalid_issuer"),
        ("tampered payload", bearer(tampered), "invalid_signature"),
        (
            "unknown kid",
            bearer(mint(claims(), stranger.private, "RS256", {"kid": "stranger"})),
            "unknown_kid",
        ),
        ("oversized token", bearer(rs(padding="x" * 9000)), "token_too_large"),
        (
            "malformed base64",
            bearer("eyJhbGciOiJSUzI1NiJ9!.eyJzdWIiOiJ4In0.c2ln"),
            "malformed_token",
        ),
        ("missing required claim", bearer(rs(tenant=None)), "missing_claim"),
        ("roles of the wrong type", bearer(rs(roles={"admin": True})), "invalid_claims"),
        ("wrong API key", {"X-API-Key": remember("matrix-api-key-999999")}, "invalid_api_key"),
        # a key sent as a bearer token is not looked at as a key; as a JWT it is malformed
        ("API key as bearer token", bearer(API_KEY), "malformed_token"),
        ("API key in another header", {"X-Api-Token": API_KEY}, "missing_credentials"),
        (
            "spoofed identity headers",
            {"X-User-Id": "root", "X-User-Roles": "admin"},
            "untrusted_proxy",
        ),
        ("empty credentials", {"Authorization": "Bearer", "X-API-Key": ""}, "missing_credentials"),
    ]
    idp = JWKSServer()
    idp.keys = [rsa_key.jwk]
    idp.__enter__()
    env = {
        "GUARD_TEST_AUTH": "matrix",
        "GUARD_TEST_JWKS_URL": idp.url,
        "GUARD_TEST_API_KEYS": json.dumps({API_KEY: {"user_id": "bob", "roles": ["user"]}}),
        "MCP_GUARD_AUDIT": str(store),
    }
    try:
        with running_server(HERE / "identity_server.py", env=env, cwd=tmp_path) as srv:
            for name, headers, reason in cases:
                outcome = await call(srv.url, headers, "echo")
                assert outcome.startswith("denied") == (reason != "rule"), (name, outcome)
            # the identity provider goes away; a token naming a key not cached yet
            idp.__exit__(None, None, None)
            rotated = rsa_pair("rotated")
            token = mint(
                claims(aud="mcp-e2e", iss="https://idp.test", tenant="acme"),
                rotated.private,
                "RS256",
                {"kid": "rotated"},
            )
            cases.append(("JWKS unreachable", bearer(token), "jwks_unavailable"))
            assert (await call(srv.url, bearer(token), "echo")).startswith("denied")
            server_log = srv.output()
    finally:
        idp.__exit__(None, None, None)

    rows = records(store, len(cases))
    got = [(name, row[4]) for (name, _, _), row in zip(cases, rows, strict=True)]
    assert got == [(name, reason) for name, _, reason in cases]
    assert all(row[3] is False for row in rows[1:]) and rows[0][3] is True
    assert not leaks(server_log), [masked(line) for line in leaks(server_log)[:3]]
