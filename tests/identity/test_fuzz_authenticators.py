"""Whatever a caller sends, authenticators answer with a principal or an `AuthenticationError`
carrying a known reason: never another exception (the middleware would still deny, but as
`error`, hiding what happened)."""

from __future__ import annotations

import asyncio
import ipaddress
import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from identity_kit import HS_SECRET, b64url, http

from guard.errors import AuthenticationError
from guard.identity import (
    ApiKeyAuthenticator,
    ChainAuthenticator,
    HeaderAuthenticator,
    JWTAuthenticator,
)

REASONS = {
    "missing_credentials",
    "invalid_token",
    "malformed_token",
    "expired",
    "not_yet_valid",
    "invalid_audience",
    "invalid_issuer",
    "invalid_signature",
    "unknown_kid",
    "jwks_unavailable",
    "disallowed_algorithm",
    "missing_claim",
    "invalid_claims",
    "token_too_large",
    "invalid_api_key",
    "untrusted_proxy",
    "ambiguous_credentials",
}

CHAIN = ChainAuthenticator(
    [
        JWTAuthenticator(HS_SECRET, audience="mcp", required_claims=["sub"]),
        JWTAuthenticator(
            jwks={"keys": [{"kty": "oct", "kid": "k", "k": b64url(b"x" * 32)}]},
            algorithms=["HS256"],
        ),
        ApiKeyAuthenticator({"fuzz-key-000000001": ["user"]}),
        HeaderAuthenticator(trusted_proxies=["10.0.0.0/8"]),
    ]
)

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=8,
)


def outcome(headers: dict[str, str], host: str | None = "203.0.113.5") -> str:
    try:
        asyncio.run(CHAIN.authenticate(http(headers, host=host)))  # type: ignore[arg-type]
    except AuthenticationError as exc:
        assert exc.reason in REASONS, exc.reason
        return exc.reason
    return "ok"


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(max_size=300))
def test_any_bearer_text(token: str) -> None:
    outcome({"authorization": f"Bearer {token}"})


@settings(max_examples=150, deadline=None)
@given(
    header=st.dictionaries(st.sampled_from(["alg", "kid", "typ", "crit", "b64"]), json_values),
    payload=json_values,
    signature=st.binary(max_size=40),
)
def test_any_token_structure(header: dict[str, Any], payload: Any, signature: bytes) -> None:
    parts = [b64url(json.dumps(header).encode()), b64url(json.dumps(payload).encode())]
    token = ".".join([*parts, b64url(signature)])
    assert outcome({"authorization": f"Bearer {token}"}) != "ok"


@settings(max_examples=100, deadline=None)
@given(
    headers=st.dictionaries(
        st.sampled_from(["x-api-key", "x-user-id", "x-user-roles", "x-agent-id", "authorization"]),
        st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=0x2FF), max_size=40),
    ),
    host=st.none() | st.ip_addresses().map(str) | st.text(max_size=10),
)
def test_any_headers_from_any_host(headers: dict[str, str], host: str | None) -> None:
    result = outcome(headers, host)
    trusted = False
    try:
        address = ipaddress.ip_address(host or "")
        mapped = getattr(address, "ipv4_mapped", None) or address
        trusted = mapped in ipaddress.ip_network("10.0.0.0/8")
    except ValueError:
        pass
    if result == "ok":
        # only the right key, or identity headers from the trusted network, get in
        assert headers.get("x-api-key", "").strip() == "fuzz-key-000000001" or trusted
