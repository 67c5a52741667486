"""A token naming a critical extension (`crit`) the guard does not understand is refused,
whichever pyjwt `pyproject.toml` lets in (found in review).

RFC 7515 section 4.1.11: if a listed extension is not understood, the JWS is invalid. pyjwt
checks `crit` only in recent releases; 2.10.1, the lowest the project allows, ignores it, so
a token its issuer marked as usable only by recipients that enforce some extension (a
binding, a constraint) was taken as an ordinary token. The tests put 2.10.1's behaviour (no
`crit` check) in place of the installed one.
"""

from __future__ import annotations

from typing import Any

import jwt
import pytest
from identity_kit import HS_SECRET, JWKSServer, KeyPair, bearer, claims, forge, mint

from guard.errors import AuthenticationError
from guard.identity import JWTAuthenticator

CRITICAL: dict[str, Any] = {
    "unknown": {"crit": ["x-bound-to"], "x-bound-to": "device-7"},
    "listed but absent": {"crit": ["x-bound-to"]},
    "not a list": {"crit": "x-bound-to", "x-bound-to": "device-7"},
    "empty": {"crit": []},
    "not strings": {"crit": [7]},
}


@pytest.fixture(params=["2.10.1", "now"])
def pyjwt_crit(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    if request.param == "2.10.1":  # pyjwt 2.10.1 has no `_validate_crit`: nothing checked
        monkeypatch.setattr(jwt.api_jws.PyJWS, "_validate_crit", lambda *_: None, raising=False)
    return str(request.param)


async def refused(auth: JWTAuthenticator, token: str) -> bool:
    """Whether the token is refused as one no recipient may take, without the refusal
    quoting what the token lists (pyjwt 2.15's own message names the extension)."""
    with pytest.raises(AuthenticationError) as refusal:
        await auth.authenticate(bearer(token))
    return refusal.value.reason == "invalid_token" and "x-bound-to" not in str(refusal.value)


@pytest.mark.parametrize("header", CRITICAL.values(), ids=CRITICAL.keys())
async def test_a_critical_extension_is_refused_with_a_secret(
    header: dict[str, Any], pyjwt_crit: str
) -> None:
    auth = JWTAuthenticator(secret=HS_SECRET)
    assert await refused(auth, mint(claims(), headers=header))


@pytest.mark.parametrize("header", CRITICAL.values(), ids=CRITICAL.keys())
async def test_a_critical_extension_is_refused_with_a_key_set(
    header: dict[str, Any], pyjwt_crit: str, jwks_server: JWKSServer, rsa_key: KeyPair
) -> None:
    jwks_server.keys = [rsa_key.jwk]
    auth = JWTAuthenticator(jwks_url=jwks_server.url)
    token = mint(claims(), rsa_key.private, "RS256", {"kid": rsa_key.kid, **header})
    assert await refused(auth, token)


async def test_b64_the_one_extension_pyjwt_implements_is_still_understood(
    pyjwt_crit: str,
) -> None:
    """`b64: true` is the ordinary encoding; listed as critical it changes nothing."""
    import hashlib
    import hmac

    from identity_kit import b64url

    unsigned = forge({"alg": "HS256", "typ": "JWT", "b64": True, "crit": ["b64"]}, claims())
    signing_input = unsigned.rsplit(".", 1)[0]
    mac = hmac.new(HS_SECRET.encode(), signing_input.encode(), hashlib.sha256).digest()
    token = f"{signing_input}.{b64url(mac)}"
    auth = JWTAuthenticator(secret=HS_SECRET)
    assert (await auth.authenticate(bearer(token))).user_id == "alice"
