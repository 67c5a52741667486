"""JWTAuthenticator: accepted tokens map to the right principal; every attack is refused
with its own reason."""

from __future__ import annotations

import datetime
import hashlib
import hmac
import json
import time
from pathlib import Path
from typing import Any

import jwt
import pytest
from identity_kit import (
    HS_SECRET,
    KeyPair,
    b64url,
    bearer,
    claims,
    forge,
    http,
    mint,
    remember,
)

from guard.errors import AuthenticationError
from guard.identity import JWTAuthenticator, fingerprint


async def reason_of(auth: JWTAuthenticator, info: Any) -> str:
    with pytest.raises(AuthenticationError) as caught:
        await auth.authenticate(info)
    return caught.value.reason


# --- accepted tokens -------------------------------------------------------------------------


async def test_hs256_token_maps_to_principal() -> None:
    auth = JWTAuthenticator(HS_SECRET)
    token = mint(claims(azp="claude-desktop", email="a@example.com"))
    p = await auth.authenticate(bearer(token))
    assert (p.user_id, p.roles, p.agent_id) == ("alice", ("user",), "claude-desktop")
    assert p.authenticated and p.auth_method == "jwt"
    assert p.key_id == fingerprint(token) and len(p.key_id) == 12
    # only allow-listed claims travel; the token itself never does
    assert "email" not in p.claims and p.claims["sub"] == "alice"
    assert token not in repr(p)


@pytest.mark.parametrize("alg", ["HS384", "HS512"])
async def test_other_hmac_algorithms_when_allowed(alg: str) -> None:
    auth = JWTAuthenticator(HS_SECRET, algorithms=["HS256", alg])
    p = await auth.authenticate(bearer(mint(claims(), alg=alg)))
    assert p.user_id == "alice"


@pytest.mark.parametrize("alg", ["RS256", "PS256"])
async def test_rsa_pem_public_key(rsa_key: KeyPair, alg: str) -> None:
    auth = JWTAuthenticator(public_key=rsa_key.public_pem, algorithms=["RS256", "PS256"])
    p = await auth.authenticate(bearer(mint(claims(), rsa_key.private, alg)))
    assert p.user_id == "alice"


async def test_ec_and_eddsa_keys(ec_key: KeyPair, ed_key: KeyPair) -> None:
    for pair in (ec_key, ed_key):
        auth = JWTAuthenticator(public_key=pair.public_pem.decode())
        assert auth.algorithms == {pair.alg}  # the default allow-list is the key's own
        p = await auth.authenticate(bearer(mint(claims(), pair.private, pair.alg)))
        assert p.user_id == "alice"


async def test_certificate_and_pem_file(rsa_key: KeyPair, tmp_path: Path) -> None:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.x509.oid import NameOID

    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "idp.test")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(rsa_key.private.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(rsa_key.private, hashes.SHA256())
    )
    pem = tmp_path / "idp.pem"
    pem.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    token = mint(claims(), rsa_key.private, "RS256")
    assert (await JWTAuthenticator(public_key=pem).authenticate(bearer(token))).user_id == "alice"


async def test_roles_from_any_claim_path() -> None:
    token = mint(
        claims(
            roles=None,
            realm_access={"roles": ["admin", "user"]},
            groups=["ops"],
            scope="read write",
            scp=["deploy"],
        )
    )
    auth = JWTAuthenticator(
        HS_SECRET, roles_claim=["realm_access.roles", "groups", "scope", "scp", "roles"]
    )
    p = await auth.authenticate(bearer(token))
    assert p.roles == ("admin", "user", "ops", "read", "write", "deploy")


async def test_single_string_role_and_custom_user_claim() -> None:
    token = mint(claims(sub="svc-1", email="bob@example.com", roles="admin"))
    auth = JWTAuthenticator(HS_SECRET, user_id_claim="email", claims=["email"])
    p = await auth.authenticate(bearer(token))
    assert (p.user_id, p.roles, dict(p.claims)) == (
        "bob@example.com",
        ("admin",),
        {"email": "bob@example.com"},
    )


async def test_agent_id_from_client_id_then_header() -> None:
    auth = JWTAuthenticator(HS_SECRET)
    with_claim = mint(claims(client_id="cursor"))
    info = http({"Authorization": f"Bearer {with_claim}", "X-Agent-Id": "spoofed"})
    assert (await auth.authenticate(info)).agent_id == "cursor"  # the token wins
    plain = mint(claims())
    info = http({"Authorization": f"Bearer {plain}", "X-Agent-Id": "claude"})
    assert (await auth.authenticate(info)).agent_id == "claude"


async def test_scheme_is_case_insensitive_and_custom_header() -> None:
    token = mint(claims())
    auth = JWTAuthenticator(HS_SECRET)
    assert (await auth.authenticate(http({"authorization": f"bEaReR {token}"}))).user_id
    custom = JWTAuthenticator(HS_SECRET, header="X-Access-Token")
    assert (await custom.authenticate(http({"x-access-token": token}))).user_id == "alice"
    assert await reason_of(custom, bearer(token)) == "missing_credentials"


async def test_audience_issuer_and_leeway() -> None:
    auth = JWTAuthenticator(HS_SECRET, audience="mcp", issuer="https://idp.test", leeway=60)
    now = int(time.time())
    token = mint(claims(aud="mcp", iss="https://idp.test", exp=now - 30))  # within leeway
    assert (await auth.authenticate(bearer(token))).user_id == "alice"
    strict = JWTAuthenticator(HS_SECRET, audience="mcp", issuer="https://idp.test", leeway=0)
    assert await reason_of(strict, bearer(token)) == "expired"


async def test_required_claims_are_kept() -> None:
    auth = JWTAuthenticator(HS_SECRET, required_claims=["sub", "role"])
    p = await auth.authenticate(bearer(mint(claims(role="dev"))))
    assert p.claims["role"] == "dev"


async def test_exp_optional_when_configured() -> None:
    token = mint(claims(exp=None))
    assert await reason_of(JWTAuthenticator(HS_SECRET), bearer(token)) == "missing_claim"
    lax = JWTAuthenticator(HS_SECRET, require_exp=False)
    assert (await lax.authenticate(bearer(token))).user_id == "alice"


# --- the attack matrix -----------------------------------------------------------------------


async def test_alg_none_is_refused() -> None:
    token = forge({"alg": "none", "typ": "JWT"}, claims())
    assert await reason_of(JWTAuthenticator(HS_SECRET), bearer(token)) == "disallowed_algorithm"
    # even with "None" spelled differently
    token = forge({"alg": "None"}, claims())
    assert await reason_of(JWTAuthenticator(HS_SECRET), bearer(token)) == "disallowed_algorithm"


async def test_hs256_signed_with_the_rsa_public_key_is_refused(rsa_key: KeyPair) -> None:
    # The attacker knows the public key and uses its PEM text as an HMAC secret.
    header = b64url(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    body = b64url(json.dumps(claims(roles=["admin"])).encode())
    mac = hmac.new(rsa_key.public_pem, f"{header}.{body}".encode(), hashlib.sha256).digest()
    token = remember(f"{header}.{body}.{b64url(mac)}")
    auth = JWTAuthenticator(public_key=rsa_key.public_pem)
    assert await reason_of(auth, bearer(token)) == "disallowed_algorithm"


def test_hmac_next_to_a_public_key_is_a_configuration_error(rsa_key: KeyPair) -> None:
    with pytest.raises(ValueError, match="public_key="):
        JWTAuthenticator(rsa_key.public_pem.decode())  # a public key is not an HMAC secret
    with pytest.raises(ValueError, match="does not fit"):
        JWTAuthenticator(public_key=rsa_key.public_pem, algorithms=["RS256", "HS256"])
    with pytest.raises(ValueError, match="unsupported"):
        JWTAuthenticator(HS_SECRET, algorithms=["none"])


async def test_expired() -> None:
    now = int(time.time())
    token = mint(claims(iat=now - 600, exp=now - 120))
    assert await reason_of(JWTAuthenticator(HS_SECRET), bearer(token)) == "expired"


async def test_not_yet_valid() -> None:
    now = int(time.time())
    token = mint(claims(nbf=now + 600))
    assert await reason_of(JWTAuthenticator(HS_SECRET), bearer(token)) == "not_yet_valid"
    issued_later = mint(claims(iat=now + 600, exp=now + 900))
    assert await reason_of(JWTAuthenticator(HS_SECRET), bearer(issued_later)) == "not_yet_valid"


async def test_wrong_audience() -> None:
    auth = JWTAuthenticator(HS_SECRET, audience="mcp")
    assert await reason_of(auth, bearer(mint(claims(aud="other-api")))) == "invalid_audience"
    # a token for some audience is refused by a server that expects none
    assert await reason_of(JWTAuthenticator(HS_SECRET), bearer(mint(claims(aud="x")))) == (
        "invalid_audience"
    )


async def test_wrong_issuer() -> None:
    auth = JWTAuthenticator(HS_SECRET, issuer="https://idp.test")
    token = mint(claims(iss="https://evil.test"))
    assert await reason_of(auth, bearer(token)) == "invalid_issuer"


async def test_tampered_payload() -> None:
    token = mint(claims())
    header, _, signature = token.split(".")
    tampered = remember(
        f"{header}.{b64url(json.dumps(claims(roles=['admin'])).encode())}.{signature}"
    )
    assert await reason_of(JWTAuthenticator(HS_SECRET), bearer(tampered)) == "invalid_signature"


async def test_short_secret_works_and_is_reported_once(caplog: pytest.LogCaptureFixture) -> None:
    short = remember("your-secret-key")  # the seed page's example
    auth = JWTAuthenticator(short)
    assert [r.levelname for r in caplog.records] == ["WARNING"]
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        token = mint(claims(), key=short)
    # no per-request warning (the suite turns warnings into errors)
    assert (await auth.authenticate(bearer(token))).user_id == "alice"


async def test_wrong_secret() -> None:
    token = mint(claims(), key="another-secret-of-the-same-length-000-" + "x" * 30)
    assert await reason_of(JWTAuthenticator(HS_SECRET), bearer(token)) == "invalid_signature"


async def test_oversized_token() -> None:
    token = mint(claims(padding="x" * 9000))
    assert await reason_of(JWTAuthenticator(HS_SECRET), bearer(token)) == "token_too_large"


@pytest.mark.parametrize(
    "token",
    [
        "not-a-jwt",
        "a.b",
        "eyJhbGciOiJIUzI1NiJ9!.eyJzdWIiOiJ4In0.c2ln",  # bad base64 in the header
        "%%%.%%%.%%%",
        b64url(b"[1,2]") + ".e30.",  # header is not an object
    ],
)
async def test_malformed_token(token: str) -> None:
    assert await reason_of(JWTAuthenticator(HS_SECRET), bearer(token)) == "malformed_token"


async def test_malformed_payload_base64() -> None:
    header = b64url(b'{"alg":"HS256","typ":"JWT"}')
    token = f"{header}.!!notbase64!!.{b64url(b'sig')}"
    assert await reason_of(JWTAuthenticator(HS_SECRET), bearer(token)) == "malformed_token"


async def test_missing_required_claim() -> None:
    auth = JWTAuthenticator(HS_SECRET, required_claims=["sub", "role"])
    assert await reason_of(auth, bearer(mint(claims()))) == "missing_claim"
    no_sub = mint(claims(sub=None))
    assert await reason_of(JWTAuthenticator(HS_SECRET), bearer(no_sub)) == "missing_claim"


@pytest.mark.parametrize("roles", [42, {"admin": True}, ["admin", 7], True])
async def test_roles_claim_of_the_wrong_type(roles: Any) -> None:
    token = mint(claims(roles=roles))
    assert await reason_of(JWTAuthenticator(HS_SECRET), bearer(token)) == "invalid_claims"


async def test_user_id_of_the_wrong_type() -> None:
    token = mint(claims(sub={"id": 1}))
    # pyjwt itself refuses a non-string `sub` as an invalid token
    assert await reason_of(JWTAuthenticator(HS_SECRET), bearer(token)) in (
        "invalid_claims",
        "invalid_token",
    )


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": ""},
        {"Authorization": "Bearer "},
        {"Authorization": "Bearer    "},
        {"Authorization": "Basic YWxpY2U6cGFzcw=="},
        {"Authorization": "Bearer"},
    ],
)
async def test_empty_or_missing_credentials(headers: dict[str, str]) -> None:
    assert await reason_of(JWTAuthenticator(HS_SECRET), http(headers)) == "missing_credentials"


async def test_failure_messages_never_quote_the_token() -> None:
    token = mint(claims(aud="other"))
    with pytest.raises(AuthenticationError) as caught:
        await JWTAuthenticator(HS_SECRET, audience="mcp").authenticate(bearer(token))
    assert token not in str(caught.value) and "audience" in str(caught.value).lower()
    assert caught.value.__cause__ is None  # pyjwt's exception (with the token) is not chained


def test_configuration_errors() -> None:
    with pytest.raises(ValueError, match="exactly one key source"):
        JWTAuthenticator()
    with pytest.raises(ValueError, match="exactly one key source"):
        JWTAuthenticator(HS_SECRET, jwks_url="https://idp.test/jwks")
    with pytest.raises(ValueError, match="empty"):
        JWTAuthenticator("")
    with pytest.raises(ValueError, match="private key"):
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import ec

        pem = ec.generate_private_key(ec.SECP256R1()).private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        JWTAuthenticator(public_key=pem)


def test_jwt_module_is_pyjwt() -> None:
    # guard.identity.jwt_auth must not shadow the library it builds on
    assert hasattr(jwt, "decode") and hasattr(jwt, "PyJWK")


async def test_embedded_jwk_and_jku_headers_are_not_trusted(
    rsa_key: KeyPair, rsa_key2: KeyPair
) -> None:
    # The attacker signs with their own key and points at it from the token header.
    attacker = rsa_key2
    extra = {"jwk": attacker.jwk, "jku": "http://127.0.0.1:9/jwks.json", "kid": attacker.kid}
    token = mint(claims(roles=["admin"]), attacker.private, "RS256", extra)
    pinned = JWTAuthenticator(public_key=rsa_key.public_pem)
    assert await reason_of(pinned, bearer(token)) == "invalid_signature"
    keyset = JWTAuthenticator(jwks={"keys": [rsa_key.jwk]})
    assert await reason_of(keyset, bearer(token)) == "unknown_kid"
