"""The `create_*_middleware` factories: mcp-auth-guard's parameters, our authenticators,
everything else passed through to `GuardMiddleware`."""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

import pytest
from fastmcp import Client, FastMCP
from fastmcp.exceptions import ToolError
from identity_kit import HS_SECRET, bearer, claims, http, mint, remember

from guard import (
    GuardMiddleware,
    create_api_key_middleware,
    create_header_middleware,
    create_jwt_middleware,
    create_no_auth_middleware,
)
from guard.errors import AuthenticationError
from guard.identity import (
    ApiKeyAuthenticator,
    HeaderAuthenticator,
    JWTAuthenticator,
    NoAuthenticator,
)

POLICY = """
name: factories
default_effect: deny
rules:
  - name: users_echo
    effect: allow
    agents: {roles: [user, anonymous_ok]}
    tools: {names: [echo]}
  - name: anyone_echo
    effect: allow
    agents: {user_id: [anonymous]}
    tools: {names: [echo]}
"""


def authenticator_of(middleware: GuardMiddleware) -> Any:
    return middleware._authenticator


def server(middleware: GuardMiddleware) -> FastMCP:
    mcp = FastMCP("factories")

    @mcp.tool
    def echo(text: str) -> str:
        return text

    mcp.add_middleware(middleware)
    return mcp


async def test_seed_page_api_key_example(tmp_path: Path) -> None:
    policy = tmp_path / "policies.yaml"
    policy.write_text(POLICY)
    user_key = remember("user-key-123")
    mw = create_api_key_middleware(
        policies=str(policy),
        api_key_roles={user_key: ["user"], remember("admin-key-456"): ["admin"]},
        audit=None,
        telemetry=False,
    )
    assert isinstance(mw, GuardMiddleware)
    auth = authenticator_of(mw)
    assert isinstance(auth, ApiKeyAuthenticator) and auth.header == "x-api-key"
    p = await auth.authenticate(http({"X-API-Key": user_key}))
    assert p.roles == ("user",) and dict(p.claims) == {}


async def test_api_keys_list_header_and_file(tmp_path: Path) -> None:
    keys = tmp_path / "keys.yaml"
    keys.write_text("ops-key-000000000001: [admin]\n")
    mw = create_api_key_middleware(
        POLICY,
        api_keys=[remember("plain-key-0000001")],
        api_key_header="X-Service-Key",
        api_keys_file=keys,
        audit=None,
        telemetry=False,
    )
    auth = authenticator_of(mw)
    assert len(auth.key_ids) == 2
    p = await auth.authenticate(http({"X-Service-Key": "plain-key-0000001"}))
    assert p.roles == ("api_user",)
    with pytest.raises(ValueError, match="api_key_roles or api_keys"):
        create_api_key_middleware(POLICY, audit=None)


async def test_api_key_roles_given_make_api_keys_ignored_as_in_the_seed(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """mcp-auth-guard 1.0.0 takes `api_key_roles` as the keys when given, and ignores
    `api_keys` then: accepting both let in keys the seed refused, as `api_user`."""
    import logging

    with caplog.at_level(logging.WARNING, logger="guard"):
        mw = create_api_key_middleware(
            POLICY,
            api_key_roles={remember("role-key-00000001"): ["user"]},
            api_keys=[remember("listed-key-000001")],
            audit=None,
            telemetry=False,
        )
    auth = authenticator_of(mw)
    assert (await auth.authenticate(http({"X-API-Key": "role-key-00000001"}))).roles == ("user",)
    with pytest.raises(AuthenticationError) as refused:
        await auth.authenticate(http({"X-API-Key": "listed-key-000001"}))
    assert refused.value.reason == "invalid_api_key"
    assert "api_keys is ignored" in caplog.text and "listed-key" not in caplog.text


def test_api_keys_as_one_string_is_refused() -> None:
    """`api_keys=os.environ["API_KEY"]` type-checks (a str is a Sequence[str]), and would
    make every character of the key a key of its own: refused."""
    with pytest.raises(TypeError, match="list of keys"):
        create_api_key_middleware(POLICY, api_keys="my-secret-key-0001", audit=None)


async def test_jwt_factory_positional_and_seed_keywords() -> None:
    mw = create_jwt_middleware(
        HS_SECRET,
        POLICY,
        "HS256",
        "mcp",
        "https://idp.test",
        ["sub", "role"],
        audit=None,
        telemetry=False,
    )
    auth = authenticator_of(mw)
    assert isinstance(auth, JWTAuthenticator)
    assert auth.algorithms == {"HS256"} and auth.audience == "mcp"
    good = mint(claims(aud="mcp", iss="https://idp.test", role="dev"))
    assert (await auth.authenticate(bearer(good))).claims["role"] == "dev"
    with pytest.raises(AuthenticationError) as caught:
        await auth.authenticate(bearer(mint(claims(aud="mcp", iss="https://idp.test"))))
    assert caught.value.reason == "missing_claim"


def test_jwt_factory_with_a_public_key_and_roles_claim(tmp_path: Path) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    pem = tmp_path / "idp.pem"
    pem.write_bytes(
        ec.generate_private_key(ec.SECP256R1())
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    mw = create_jwt_middleware(
        policies=POLICY,
        jwt_public_key=pem,
        roles_claim="realm_access.roles",
        audit=None,
        telemetry=False,
    )
    auth = authenticator_of(mw)
    assert auth.algorithms == {"ES256"} and auth.mapping.roles == ("realm_access.roles",)
    with pytest.raises(ValueError, match="does not fit"):
        create_jwt_middleware(policies=POLICY, jwt_public_key=pem, jwt_algorithm="HS256")


async def test_seed_style_rs256_public_key_as_jwt_secret() -> None:
    from identity_kit import rsa_pair

    pair = rsa_pair("seed")
    mw = create_jwt_middleware(
        pair.public_pem.decode(), POLICY, jwt_algorithm="RS256", audit=None, telemetry=False
    )
    auth = authenticator_of(mw)
    assert auth.algorithms == {"RS256"}
    token = mint(claims(), pair.private, "RS256")
    assert (await auth.authenticate(bearer(token))).user_id == "alice"


async def test_header_factory_trusts_only_configured_proxies() -> None:
    mw = create_header_middleware(
        policies=POLICY,
        header_mapping={"x-user-id": "user_id", "x-user-roles": "roles"},
        trusted_proxies=["10.0.0.0/8"],
        audit=None,
        telemetry=False,
    )
    auth = authenticator_of(mw)
    assert isinstance(auth, HeaderAuthenticator)
    with pytest.raises(AuthenticationError) as caught:
        await auth.authenticate(http({"X-User-Id": "eve", "X-User-Roles": "admin"}))
    assert caught.value.reason == "untrusted_proxy"


async def test_no_auth_factory_over_a_real_client() -> None:
    mw = create_no_auth_middleware(policies=POLICY, audit=None, telemetry=False)
    assert isinstance(authenticator_of(mw), NoAuthenticator)
    async with Client(server(mw)) as client:
        result = await client.call_tool("echo", {"text": "hi"})
        assert result.content[0].text == "hi"  # type: ignore[union-attr]


async def test_api_key_factory_in_memory_has_no_headers_and_fails_closed() -> None:
    mw = create_api_key_middleware(
        POLICY, {remember("user-key-000777"): ["user"]}, audit=None, telemetry=False
    )
    async with Client(server(mw)) as client:
        with pytest.raises(ToolError):
            await client.call_tool("echo", {"text": "hi"})


def test_enable_audit_logging_false_means_no_records(tmp_path: Path) -> None:
    mw = create_no_auth_middleware(POLICY, enable_audit_logging=False, telemetry=False)
    assert mw.audit is None
    assert not list(tmp_path.iterdir())  # no default store created in the working directory


# factory parameter -> authenticator parameter, where the factory keeps mcp-auth-guard's name
RENAMED = {
    "jwt_secret": "secret",
    "jwt_public_key": "public_key",
    "jwt_algorithm": "algorithms",
    "jwt_audience": "audience",
    "jwt_issuer": "issuer",
    "jwt_leeway": "leeway",
    "token_header": "header",
    "api_key_roles": "keys",
    "api_keys_file": "file",
    "api_keys_env": "env",
    "api_key_header": "header",
}


@pytest.mark.parametrize(
    ("factory", "authenticator"),
    [
        (create_jwt_middleware, JWTAuthenticator),
        (create_api_key_middleware, ApiKeyAuthenticator),
        (create_header_middleware, HeaderAuthenticator),
        (create_no_auth_middleware, NoAuthenticator),
    ],
)
def test_each_factory_takes_every_option_of_its_authenticator(
    factory: Any, authenticator: type
) -> None:
    """As the module says: a JWKS URL's timeout or cache times could not be set through
    `create_jwt_middleware` (they went on to GuardMiddleware, which refused them)."""
    offered = {RENAMED.get(n, n) for n in inspect.signature(factory).parameters}
    wanted = set(inspect.signature(authenticator).parameters)
    assert wanted - offered == set()


def test_jwt_factory_passes_the_jwks_settings_on() -> None:
    jwks = {
        "keys": [{"kty": "oct", "kid": "k1", "k": "c2VjcmV0LW9mLWF0LWxlYXN0LTMyLWJ5dGVzLWxvbmc"}]
    }
    middleware = create_jwt_middleware(
        jwks=jwks,
        jwt_algorithm="HS256",
        policies=POLICY,
        jwks_timeout=2.0,
        jwks_cache_ttl=60.0,
        jwks_max_stale=0.0,
        jwks_min_refresh_interval=5.0,
        agent_id_header=None,
        audit=None,
    )
    auth = authenticator_of(middleware)
    keys = auth._jwks
    assert (keys.timeout, keys.cache_ttl, keys.max_stale, keys.min_refresh_interval) == (
        2.0,
        60.0,
        0.0,
        5.0,
    )
    assert auth.agent_id_header is None
    with pytest.raises(ValueError, match="timeout"):
        create_jwt_middleware(jwks=jwks, policies=POLICY, jwks_timeout=0, audit=None)


def test_no_auth_factory_passes_the_agent_header_on() -> None:
    """`create_no_auth_middleware(agent_id_header=None)` went on to GuardMiddleware, which
    refused it: a server could not stop believing the self-declared agent header."""
    middleware = create_no_auth_middleware(POLICY, agent_id_header=None, audit=None)
    assert authenticator_of(middleware).agent_id_header is None
