"""Authentication cost per request: our authenticators beside mcp-auth-guard 1.0.0's (same
credential, same run). For RS256 the baseline is a bare `pyjwt.decode`, the floor any
verifying authenticator pays. Usage: `python3 benchmarks/bench_identity.py`.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._harness import drive, header, row, time_call
from guard.identity import (
    ApiKeyAuthenticator,
    HeaderAuthenticator,
    JWTAuthenticator,
    RequestInfo,
)

SECRET = "bench-secret-" + "0123456789abcdef" * 2


def _seed(method: str, **config: object) -> object:
    from mcp_auth_guard.identity import APIKeyAuthenticator, HeaderAuthenticator, JWTAuthenticator
    from mcp_auth_guard.schemas.auth import AuthConfig, AuthMethod

    cfg = AuthConfig(method=AuthMethod(method), **config)
    cls = {"jwt": JWTAuthenticator, "api_key": APIKeyAuthenticator}.get(method, HeaderAuthenticator)
    return cls(cfg)


def main() -> None:
    now = int(time.time())
    claims = {"sub": "alice", "roles": ["user"], "iat": now, "exp": now + 3600}
    token = jwt.encode(claims, SECRET, algorithm="HS256")
    headers = {"authorization": f"Bearer {token}"}
    info = RequestInfo("http", headers=headers, client_host="127.0.0.1")
    ours = JWTAuthenticator(SECRET)
    seed = _seed("jwt", jwt_secret=SECRET)
    header("authenticate one request (median µs)")
    a = time_call(lambda: drive(ours.authenticate(info)))
    b = time_call(lambda: drive(seed.authenticate(headers)))  # type: ignore[attr-defined]
    row("JWT HS256, valid", a.median_us, b.median_us)

    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    rs_token = jwt.encode(claims, private, algorithm="RS256")
    rs_info = RequestInfo("http", headers={"authorization": f"Bearer {rs_token}"})
    rs = JWTAuthenticator(public_key=pem)
    public = private.public_key()
    a = time_call(lambda: drive(rs.authenticate(rs_info)), samples=5000)
    b = time_call(lambda: jwt.decode(rs_token, public, algorithms=["RS256"]), samples=5000)
    row("JWT RS256, valid (baseline: bare pyjwt)", a.median_us, b.median_us)

    for n in (10, 1000):
        keys = {f"bench-key-{i:06d}": ["user"] for i in range(n)}
        presented = f"bench-key-{n - 1:06d}"
        key_info = RequestInfo("http", headers={"x-api-key": presented})
        ours_k = ApiKeyAuthenticator(keys)
        seed_k = _seed("api_key", api_key_roles=keys)
        a = time_call(lambda: drive(ours_k.authenticate(key_info)))  # noqa: B023
        b = time_call(lambda: drive(seed_k.authenticate({"x-api-key": presented})))  # type: ignore[attr-defined]  # noqa: B023
        row(f"API key, {n} keys configured", a.median_us, b.median_us)

    id_headers = {"x-user-id": "alice", "x-user-roles": "user,dev"}
    hinfo = RequestInfo("http", headers=id_headers, client_host="127.0.0.1")
    ours_h = HeaderAuthenticator()
    seed_h = _seed("header_based")
    a = time_call(lambda: drive(ours_h.authenticate(hinfo)))
    b = time_call(lambda: drive(seed_h.authenticate(id_headers)))  # type: ignore[attr-defined]
    row("trusted headers (seed: no trust check)", a.median_us, b.median_us)


if __name__ == "__main__":
    main()
