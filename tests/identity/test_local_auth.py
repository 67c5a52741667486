"""Stdio, no-auth, FastMCP-token and chained authenticators."""

from __future__ import annotations

import pytest
from fastmcp.server.auth import AccessToken
from identity_kit import HS_SECRET, KeyPair, bearer, claims, forge, http, mint, remember

from guard.errors import AuthenticationError
from guard.identity import (
    ApiKeyAuthenticator,
    ChainAuthenticator,
    FastMCPTokenAuthenticator,
    HeaderAuthenticator,
    JWTAuthenticator,
    NoAuthenticator,
    RequestInfo,
    StdioAuthenticator,
    fingerprint,
)

STDIO = RequestInfo(transport="stdio")


async def reason_of(auth: object, info: RequestInfo) -> str:
    with pytest.raises(AuthenticationError) as caught:
        await auth.authenticate(info)  # type: ignore[attr-defined]
    return caught.value.reason


# --- stdio -----------------------------------------------------------------------------------


async def test_stdio_from_configuration() -> None:
    p = await StdioAuthenticator("dev", ["developer"]).authenticate(STDIO)
    assert (p.user_id, p.roles, p.auth_method, p.authenticated) == (
        "dev",
        ("developer",),
        "stdio",
        True,
    )


async def test_stdio_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MCP_GUARD_USER", "carol")
    monkeypatch.setenv("MCP_GUARD_ROLES", "analyst, viewer")
    monkeypatch.setenv("MCP_GUARD_AGENT", "claude-desktop")
    p = await StdioAuthenticator().authenticate(STDIO)
    assert (p.user_id, p.roles, p.agent_id) == ("carol", ("analyst", "viewer"), "claude-desktop")
    # configuration wins over the environment
    assert (await StdioAuthenticator("dave").authenticate(STDIO)).user_id == "dave"


async def test_stdio_without_user_or_over_http(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MCP_GUARD_USER", raising=False)
    assert await reason_of(StdioAuthenticator(), STDIO) == "missing_credentials"
    # the launcher's word does not cover network callers
    assert await reason_of(StdioAuthenticator("dev"), http()) == "missing_credentials"


# --- none ------------------------------------------------------------------------------------


async def test_no_auth_is_anonymous() -> None:
    p = await NoAuthenticator().authenticate(http())
    assert (p.user_id, p.authenticated, p.auth_method, p.agent_id) == (
        "anonymous",
        True,
        "none",
        None,
    )
    p = await NoAuthenticator().authenticate(http({"X-Agent-Id": "claude"}))
    assert p.agent_id == "claude" and p.user_id == "anonymous"


# --- FastMCP's verified token ----------------------------------------------------------------


async def test_fastmcp_token_maps_claims_scopes_and_client() -> None:
    raw = remember("opaque-verified-token-value-123")
    token = AccessToken(
        token=raw,
        client_id="cursor",
        scopes=["tools:read", "tools:call"],
        claims={"sub": "erin", "roles": ["dev"], "email": "erin@example.com", "iss": "idp"},
    )
    info = RequestInfo(transport="http", access_token=token)
    p = await FastMCPTokenAuthenticator().authenticate(info)
    assert p.user_id == "erin" and p.agent_id == "cursor" and p.auth_method == "fastmcp"
    assert p.roles == ("dev", "tools:read", "tools:call")
    assert dict(p.claims) == {"sub": "erin", "iss": "idp"}  # allow-list only
    assert p.key_id == fingerprint(raw) and raw not in repr(p)


async def test_fastmcp_token_without_sub_uses_client_id() -> None:
    token = AccessToken(token=remember("opaque-token-no-sub-1234"), client_id="svc", scopes=[])
    p = await FastMCPTokenAuthenticator().authenticate(RequestInfo("http", access_token=token))
    assert p.user_id == "svc"


async def test_fastmcp_token_user_id_claim_is_a_claim_path() -> None:
    """As for every authenticator, `user_id_claim` may name a nested claim."""
    token = AccessToken(
        token=remember("opaque-token-nested-0001"), client_id="c", scopes=[],
        claims={"sub": "uuid-1", "ext": {"email": "bob@corp.example"}},
    )  # fmt: skip
    auth = FastMCPTokenAuthenticator(user_id_claim="ext.email")
    p = await auth.authenticate(RequestInfo("http", access_token=token))
    assert p.user_id == "bob@corp.example"


async def test_fastmcp_token_missing_or_bad_roles() -> None:
    auth = FastMCPTokenAuthenticator()
    assert await reason_of(auth, http()) == "missing_credentials"
    token = AccessToken(token="t" * 20, client_id="c", scopes=[], claims={"sub": "x", "roles": 5})
    assert await reason_of(auth, RequestInfo("http", access_token=token)) == "invalid_claims"


# --- chains ----------------------------------------------------------------------------------


async def test_chain_first_success_wins() -> None:
    key = remember("chain-api-key-000001")
    chain = ChainAuthenticator(
        [
            JWTAuthenticator(HS_SECRET),
            ApiKeyAuthenticator({key: {"user_id": "ci", "roles": ["ci"]}}),
        ]
    )
    assert chain.method == "jwt+api_key"
    assert (await chain.authenticate(bearer(mint(claims())))).auth_method == "jwt"
    p = await chain.authenticate(http({"X-API-Key": key}))
    assert (p.user_id, p.auth_method) == ("ci", "api_key")


async def test_chain_reports_the_most_specific_failure() -> None:
    key = remember("chain-api-key-000002")
    chain = ChainAuthenticator(
        [
            JWTAuthenticator(HS_SECRET),
            HeaderAuthenticator(trusted_proxies=["10.0.0.0/8"]),
            ApiKeyAuthenticator({key: ["ci"]}),
        ]
    )
    assert await reason_of(chain, http()) == "missing_credentials"
    expired = mint(claims(iat=1, exp=2))
    assert await reason_of(chain, bearer(expired)) == "expired"  # not the others' "missing"
    wrong_key = http({"X-API-Key": remember("chain-api-key-999999")})
    assert await reason_of(chain, wrong_key) == "invalid_api_key"
    spoof = http({"X-User-Id": "mallory"}, host="203.0.113.1")
    assert await reason_of(chain, spoof) == "untrusted_proxy"
    both = http({"X-User-Id": "m", "X-API-Key": "wrong-key-000000"}, host="203.0.113.1")
    assert await reason_of(chain, both) == "invalid_api_key"  # a bad credential ranks highest


async def test_chain_of_two_issuers_reports_the_one_the_token_was_for(rsa_key: KeyPair) -> None:
    chain = ChainAuthenticator(
        [JWTAuthenticator(HS_SECRET), JWTAuthenticator(public_key=rsa_key.public_pem)]
    )
    expired_rs = mint(claims(iat=1, exp=2), rsa_key.private, "RS256")
    # the HS256 authenticator says disallowed_algorithm; the RS256 one knows better
    assert await reason_of(chain, bearer(expired_rs)) == "expired"
    unsigned = forge({"alg": "none"}, claims())
    assert await reason_of(chain, bearer(unsigned)) == "disallowed_algorithm"


def test_chain_configuration_errors() -> None:
    with pytest.raises(ValueError):
        ChainAuthenticator([])
    with pytest.raises(TypeError, match="not an Authenticator"):
        ChainAuthenticator([object()])  # type: ignore[list-item]
