"""A public key written as the base64 (or hex) text of its DER, without PEM armor, is not
an HMAC secret either (found in review: an authentication bypass).

That is how Keycloak shows a realm's key ("Public key" in the console, `public_key` in the
public `/realms/<realm>` document), and how many tools print a PEM body. `secret=` took it
as HMAC text: `_looks_like_key` knew PEM, DER bytes, SSH and JWK, but not DER in text,
and pyjwt does not recognise it either. Anyone who can read the public key could then sign
HS256 tokens naming any user and any roles.
"""

from __future__ import annotations

import base64
import textwrap
from collections.abc import Callable

import pytest
from cryptography.hazmat.primitives import serialization
from identity_kit import KeyPair, bearer, claims, mint

from guard.errors import AuthenticationError
from guard.identity import JWTAuthenticator


def _der(pair: KeyPair) -> bytes:
    return bytes(
        pair.private.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )


FORMS: dict[str, Callable[[bytes], str]] = {
    "base64 (Keycloak)": lambda der: base64.b64encode(der).decode(),
    "base64 in PEM lines": lambda der: "\n".join(textwrap.wrap(base64.b64encode(der).decode(), 64)),
    "base64url unpadded": lambda der: base64.urlsafe_b64encode(der).decode().rstrip("="),
    "hex": lambda der: der.hex(),
}


@pytest.mark.parametrize("form", FORMS)
async def test_a_public_key_in_base64_or_hex_is_never_an_hmac_secret(
    rsa_key: KeyPair, ec_key: KeyPair, form: str
) -> None:
    for pair in (rsa_key, ec_key):
        public = FORMS[form](_der(pair))
        try:
            auth = JWTAuthenticator(secret=public)
        except ValueError as refused:
            assert "public_key=" in str(refused)
            continue
        # accepted: whoever read the public key signs tokens for anyone
        forged = mint(claims(sub="mallory", roles=["admin"]), public.encode(), "HS256")
        try:
            who = (await auth.authenticate(bearer(forged))).user_id
        except AuthenticationError:
            who = None
        pytest.fail(f"{form} public key taken as an HMAC secret (forged token: {who})")


def test_random_secrets_in_base64_or_hex_are_still_secrets() -> None:
    import os

    raw = os.urandom(48)
    for secret in (base64.b64encode(raw).decode(), raw.hex(), base64.b64encode(b"0" * 40)):
        assert JWTAuthenticator(secret=secret).algorithms == {"HS256"}
