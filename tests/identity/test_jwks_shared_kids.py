"""Key sets that name several keys alike: a token naming that `kid` verifies with whichever
of them signed it, and nothing else changes."""

from __future__ import annotations

import time

import pytest
from identity_kit import KeyPair, bearer, claims, ec_pair, mint, rsa_pair

from guard.errors import AuthenticationError
from guard.identity import JWKSKeys, JWTAuthenticator


async def reason(auth: JWTAuthenticator, token: str) -> str:
    with pytest.raises(AuthenticationError) as caught:
        await auth.authenticate(bearer(token))
    return caught.value.reason


def alike(pair: KeyPair, kid: str) -> dict[str, object]:
    return {**pair.jwk, "kid": kid}


async def test_keys_of_two_types_under_one_kid_each_verify_their_tokens() -> None:
    rsa, ec = rsa_pair("x"), ec_pair("x")
    for order in ([rsa, ec], [ec, rsa]):
        auth = JWTAuthenticator(jwks={"keys": [alike(p, "shared") for p in order]})
        for pair, user in ((rsa, "rsa-user"), (ec, "ec-user")):
            token = mint(claims(sub=user), pair.private, pair.alg, {"kid": "shared"})
            assert (await auth.authenticate(bearer(token))).user_id == user


async def test_two_keys_of_one_type_under_one_kid_each_verify_their_tokens() -> None:
    old, new = rsa_pair("a"), rsa_pair("b")
    auth = JWTAuthenticator(jwks={"keys": [alike(old, "k"), alike(new, "k")]})
    for pair, user in ((old, "signed-by-old"), (new, "signed-by-new")):
        token = mint(claims(sub=user), pair.private, "RS256", {"kid": "k"})
        assert (await auth.authenticate(bearer(token))).user_id == user
    # a key the set does not hold, naming that kid, verifies with neither
    stranger = rsa_pair("s")
    forged = mint(claims(), stranger.private, "RS256", {"kid": "k"})
    assert await reason(auth, forged) == "invalid_signature"


async def test_a_claim_failure_is_the_tokens_whichever_key_signed_it() -> None:
    """The first key's signature verifies and the token has expired: refused as expired,
    not tried with the next key (nor reported as a bad signature)."""
    first, second = rsa_pair("a"), rsa_pair("b")
    auth = JWTAuthenticator(jwks={"keys": [alike(first, "k"), alike(second, "k")]})
    stale = claims(exp=int(time.time()) - 3600)
    for pair in (first, second):
        token = mint(stale, pair.private, "RS256", {"kid": "k"})
        assert await reason(auth, token) == "expired"


async def test_a_pinned_algorithm_still_rules_among_keys_named_alike() -> None:
    rsa = rsa_pair("x")
    pinned = {**alike(rsa, "k"), "alg": "RS256"}
    auth = JWTAuthenticator(jwks={"keys": [pinned, alike(ec_pair("y"), "k")]},
                            algorithms=["RS256", "PS256", "ES256"])  # fmt: skip
    ps = mint(claims(), rsa.private, "PS256", {"kid": "k"})
    assert await reason(auth, ps) == "disallowed_algorithm"  # neither key may verify PS256


async def test_two_keys_without_a_kid_are_two_keys() -> None:
    """A token without a kid is verified only against a one-key set; two keys without a
    kid are not one (the second used to replace the first, and verified such tokens)."""
    first, second = rsa_pair("a"), rsa_pair("b")
    bare = [{k: v for k, v in p.jwk.items() if k != "kid"} for p in (first, second)]
    auth = JWTAuthenticator(jwks={"keys": bare})
    for pair in (first, second):
        assert await reason(auth, mint(claims(), pair.private, "RS256")) == "unknown_kid"
    keys = JWKSKeys(jwks={"keys": bare})
    with pytest.raises(AuthenticationError):
        await keys.key(None)
    assert len(await JWKSKeys(jwks={"keys": bare[:1]}).key(None)) == 1
