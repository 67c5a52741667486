"""A public key given as an HMAC secret is a configuration error in every form keys travel
in, not only PEM at the very start (found in review: an authentication bypass).

`_looks_like_key` (guard/identity/jwt_auth.py) looked only for `-----BEGIN` or an OpenSSH
prefix at the start of `secret=` / `jwt_secret=`. A DER public key (what AWS KMS
`GetPublicKey` returns) or a JWK's JSON text was taken as the HMAC secret, and with pyjwt
2.10 (`pyproject.toml` allows `>=2.8`) anyone who knows the public key signed HS256 tokens
the guard accepted: `sub: attacker, roles: [admin]`. pyjwt 2.15 refuses such HMAC keys
when a token is checked, so there the server started and refused every caller instead.
"""

from __future__ import annotations

import datetime
import json

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509.oid import NameOID
from identity_kit import KeyPair, bearer, claims, mint


def _der(pair: KeyPair) -> bytes:
    return bytes(
        pair.private.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )


def _der_certificate(pair: KeyPair) -> bytes:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "idp.test")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(pair.private.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(pair.private, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.DER)


FORMS = {
    "DER public key": _der,
    "DER certificate": _der_certificate,
    "JWK text": lambda pair: json.dumps(pair.jwk),
    "JWKS text": lambda pair: json.dumps({"keys": [pair.jwk]}).encode(),
    "PEM after a BOM": lambda pair: b"\xef\xbb\xbf" + pair.public_pem,
    "PEM after a note": lambda pair: b"prod IdP signing key\n" + pair.public_pem,
}


@pytest.mark.parametrize("form", FORMS)
def test_a_public_key_is_never_an_hmac_secret(rsa_key: KeyPair, form: str) -> None:
    from guard import create_jwt_middleware
    from guard.identity import JWTAuthenticator

    secret = FORMS[form](rsa_key)
    with pytest.raises(ValueError, match="public_key="):
        JWTAuthenticator(secret)
    with pytest.raises(ValueError, match="public_key="):
        create_jwt_middleware(jwt_secret=secret, policies={"name": "p"}, audit=None)


async def test_a_der_public_key_is_taken_as_public_key(rsa_key: KeyPair) -> None:
    from guard.identity import JWTAuthenticator

    token = mint(claims(), rsa_key.private, "RS256")
    for der in (_der(rsa_key), _der_certificate(rsa_key)):
        auth = JWTAuthenticator(public_key=der)
        assert auth.algorithms == {"RS256"}
        assert (await auth.authenticate(bearer(token))).user_id == "alice"


def test_ordinary_secrets_are_still_secrets() -> None:
    from guard.identity import JWTAuthenticator

    for secret in (
        "a-long-random-secret-of-32-bytes-or-more",
        b"\x30\x82" + bytes(range(40)),  # starts like DER, is not a key
        '{"not": "a key", "padding": "........................"}',
        "ssh-deploy-hmac-secret-0123456789abcdef",
    ):
        assert JWTAuthenticator(secret).algorithms == {"HS256"}
