"""`_parse` (guard/identity/jwks.py:85-90) promises that one unusable key "must not hide
the others", but only catches `jwt.PyJWTError`: a JWK whose `alg` is `none` (pyjwt raises
NotImplementedError) or not a string (TypeError) makes the whole fetched set unusable."""

from __future__ import annotations

import pytest
from identity_kit import JWKSServer, KeyPair, bearer, claims, mint


@pytest.mark.parametrize("bad_alg", ["none", ["RS256"]])
async def test_one_odd_jwk_does_not_break_the_key_set(
    jwks_server: JWKSServer, rsa_key: KeyPair, rsa_key2: KeyPair, bad_alg: object
) -> None:
    from guard.identity import JWTAuthenticator

    odd = {**rsa_key2.jwk, "kid": "odd", "alg": bad_alg}
    jwks_server.keys = [odd, rsa_key.jwk]
    auth = JWTAuthenticator(jwks_url=jwks_server.url)
    token = mint(claims(), rsa_key.private, "RS256", {"kid": rsa_key.kid})
    assert (await auth.authenticate(bearer(token))).user_id == "alice"


@pytest.mark.parametrize("bad_kid", [["odd"], {"id": "odd"}, 7])
async def test_a_jwk_whose_kid_is_not_a_string_does_not_break_the_key_set(
    jwks_server: JWKSServer, rsa_key: KeyPair, rsa_key2: KeyPair, bad_kid: object
) -> None:
    """Found in review: keys were filed under their `kid` as found, and a list or object
    cannot be a dict key (TypeError): every fetch failed, and every caller was refused
    `jwks_unavailable`. A kid is a string (RFC 7517 section 4.5): such a key is skipped."""
    from guard.identity import JWKSKeys, JWTAuthenticator

    odd = {**rsa_key2.jwk, "kid": bad_kid}
    jwks_server.keys = [odd, rsa_key.jwk]
    auth = JWTAuthenticator(jwks_url=jwks_server.url)
    token = mint(claims(), rsa_key.private, "RS256", {"kid": rsa_key.kid})
    assert (await auth.authenticate(bearer(token))).user_id == "alice"
    # nor does it make a key set given in memory unloadable
    assert list(JWKSKeys(jwks={"keys": [odd, rsa_key.jwk]})._keys) == [rsa_key.kid]
