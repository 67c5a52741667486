"""JWKS keys served over real HTTP on 127.0.0.1: rotation, bounded refresh, failures."""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path

import pytest
from identity_kit import (
    HS_SECRET,
    JWKSServer,
    KeyPair,
    b64url,
    bearer,
    claims,
    mint,
    remember,
    rsa_pair,
)

from guard.errors import AuthenticationError
from guard.identity import JWKSKeys, JWTAuthenticator
from guard.identity._common import LOG


async def reason(auth: JWTAuthenticator, token: str) -> str:
    with pytest.raises(AuthenticationError) as caught:
        await auth.authenticate(bearer(token))
    return caught.value.reason


async def test_jwks_url_verifies_each_key_type(
    jwks_server: JWKSServer, rsa_key: KeyPair, ec_key: KeyPair, ed_key: KeyPair
) -> None:
    jwks_server.keys = [rsa_key.jwk, ec_key.jwk, ed_key.jwk]
    auth = JWTAuthenticator(jwks_url=jwks_server.url, audience="mcp")
    for pair in (rsa_key, ec_key, ed_key):
        token = mint(claims(aud="mcp"), pair.private, pair.alg, {"kid": pair.kid})
        assert (await auth.authenticate(bearer(token))).user_id == "alice"
    assert jwks_server.hits == 1  # one fetch served all three


async def test_rotation_new_kid_triggers_refresh(
    jwks_server: JWKSServer, rsa_key: KeyPair, rsa_key2: KeyPair
) -> None:
    jwks_server.keys = [rsa_key.jwk]
    auth = JWTAuthenticator(jwks_url=jwks_server.url, jwks_min_refresh_interval=0)
    old = mint(claims(), rsa_key.private, "RS256", {"kid": rsa_key.kid})
    assert (await auth.authenticate(bearer(old))).user_id == "alice"
    # The provider rotates: the new key appears, the old one is retired.
    jwks_server.keys = [rsa_key2.jwk]
    new = mint(claims(sub="bob"), rsa_key2.private, "RS256", {"kid": rsa_key2.kid})
    assert (await auth.authenticate(bearer(new))).user_id == "bob"
    assert jwks_server.hits == 2
    # The retired key is gone after the refresh: its tokens no longer verify.
    assert await reason(auth, old) == "unknown_kid"


async def test_refresh_rate_is_bounded(jwks_server: JWKSServer, rsa_key: KeyPair) -> None:
    jwks_server.keys = [rsa_key.jwk]
    auth = JWTAuthenticator(jwks_url=jwks_server.url, jwks_min_refresh_interval=60)
    good = mint(claims(), rsa_key.private, "RS256", {"kid": rsa_key.kid})
    await auth.authenticate(bearer(good))
    # An attacker sends many tokens naming random kids: none may cause a fetch.
    for i in range(20):
        forged = mint(claims(), rsa_key.private, "RS256", {"kid": f"random-{i}"})
        assert await reason(auth, forged) == "unknown_kid"
    assert jwks_server.hits == 1


async def test_concurrent_unknown_kids_fetch_once(
    jwks_server: JWKSServer, rsa_key: KeyPair, rsa_key2: KeyPair
) -> None:
    jwks_server.keys = [rsa_key.jwk]
    keys = JWKSKeys(url=jwks_server.url, min_refresh_interval=60)
    await keys.key(rsa_key.kid)
    jwks_server.keys = [rsa_key.jwk, rsa_key2.jwk]
    clock = {"now": 0.0}
    keys = JWKSKeys(url=jwks_server.url, min_refresh_interval=5, clock=lambda: clock["now"])
    jwks_server.hits = 0
    results = await asyncio.gather(
        *(keys.key(rsa_key2.kid) for _ in range(10)), return_exceptions=True
    )
    assert all(not isinstance(r, BaseException) for r in results)
    assert jwks_server.hits == 1
    # time passes beyond the bound: an unknown kid may fetch again
    clock["now"] = 10.0
    with pytest.raises(AuthenticationError):
        await keys.key("never-seen")
    assert jwks_server.hits == 2


async def test_cache_ttl_refetches(jwks_server: JWKSServer, rsa_key: KeyPair) -> None:
    jwks_server.keys = [rsa_key.jwk]
    clock = {"now": 0.0}
    keys = JWKSKeys(url=jwks_server.url, cache_ttl=100, clock=lambda: clock["now"])
    await keys.key(rsa_key.kid)
    await keys.key(rsa_key.kid)
    assert jwks_server.hits == 1
    clock["now"] = 150.0
    await keys.key(rsa_key.kid)
    assert jwks_server.hits == 2


async def test_jwks_unreachable(rsa_key: KeyPair, caplog: pytest.LogCaptureFixture) -> None:
    server = JWKSServer()  # bound, never started: nothing answers... so close it
    url = server.url + "?client_secret=" + remember("not-for-logs-0001")
    server.httpd.server_close()
    auth = JWTAuthenticator(jwks_url=url, jwks_timeout=1)
    token = mint(claims(), rsa_key.private, "RS256", {"kid": rsa_key.kid})
    assert await reason(auth, token) == "jwks_unavailable"
    assert await reason(auth, token) == "jwks_unavailable"  # and no retry storm
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert warnings == [f"JWKS fetch from {url.split('?')[0]} failed: ConnectError"]


async def test_jwks_url_credentials_stay_out_of_httpx_logs(
    jwks_server: JWKSServer, rsa_key: KeyPair, caplog: pytest.LogCaptureFixture
) -> None:
    """httpx logs every request's full URL at INFO: a JWKS URL's query (which may hold a
    credential) must not reach an application that logs at INFO."""
    caplog.set_level(logging.INFO)
    secret = remember("jwks-url-credential-0042")
    jwks_server.keys = [rsa_key.jwk]
    auth = JWTAuthenticator(jwks_url=f"{jwks_server.url}?client_secret={secret}")
    token = mint(claims(), rsa_key.private, "RS256", {"kid": rsa_key.kid})
    assert (await auth.authenticate(bearer(token))).user_id == "alice"
    lines = [(r.name, r.getMessage()) for r in caplog.records]
    assert not [line for line in lines if secret in line[1]]
    # the request is still logged, naming the endpoint without its query
    assert any(name == "httpx" and jwks_server.url in text for name, text in lines), lines


async def test_jwks_http_error_then_recovery(jwks_server: JWKSServer, rsa_key: KeyPair) -> None:
    jwks_server.status = 503
    clock = {"now": 0.0}
    auth = JWTAuthenticator(jwks_url=jwks_server.url, jwks_min_refresh_interval=30)
    assert auth._jwks is not None
    auth._jwks._clock = lambda: clock["now"]
    token = mint(claims(), rsa_key.private, "RS256", {"kid": rsa_key.kid})
    assert await reason(auth, token) == "jwks_unavailable"
    jwks_server.status = 200
    jwks_server.keys = [rsa_key.jwk]
    assert await reason(auth, token) == "jwks_unavailable"  # still inside the bound
    clock["now"] = 31.0
    assert (await auth.authenticate(bearer(token))).user_id == "alice"


async def test_unknown_kid_and_missing_kid(rsa_key: KeyPair, rsa_key2: KeyPair) -> None:
    auth = JWTAuthenticator(jwks={"keys": [rsa_key.jwk, rsa_key2.jwk]})
    stranger = rsa_pair("stranger")
    token = mint(claims(), stranger.private, "RS256", {"kid": "stranger"})
    assert await reason(auth, token) == "unknown_kid"
    # without a kid, a two-key set is ambiguous
    assert await reason(auth, mint(claims(), rsa_key.private, "RS256")) == "unknown_kid"
    # ...but a one-key set is not
    single = JWTAuthenticator(jwks={"keys": [rsa_key.jwk]})
    assert (await single.authenticate(bearer(mint(claims(), rsa_key.private, "RS256")))).user_id


async def test_kid_of_wrong_key_type_or_pinned_alg(rsa_key: KeyPair, ec_key: KeyPair) -> None:
    pinned = {**rsa_key.jwk, "alg": "RS256"}
    auth = JWTAuthenticator(jwks={"keys": [pinned, ec_key.jwk]}, algorithms=["RS256", "PS256"])
    ps = mint(claims(), rsa_key.private, "PS256", {"kid": rsa_key.kid})
    assert await reason(auth, ps) == "disallowed_algorithm"  # the JWK pins RS256
    # an RS256 token that names the EC key
    rs = mint(claims(), rsa_key.private, "RS256", {"kid": ec_key.kid})
    assert await reason(auth, rs) == "disallowed_algorithm"


async def test_hs256_against_a_jwks_is_refused(rsa_key: KeyPair) -> None:
    auth = JWTAuthenticator(jwks={"keys": [rsa_key.jwk]})
    token = mint(claims(), HS_SECRET, "HS256", {"kid": rsa_key.kid})
    assert await reason(auth, token) == "disallowed_algorithm"


async def test_jwks_file_and_bad_documents(tmp_path: Path, rsa_key: KeyPair) -> None:
    path = tmp_path / "jwks.json"
    path.write_text(
        json.dumps(
            {"keys": [rsa_key.jwk, {"kty": "bogus"}, {**rsa_key.jwk, "use": "enc", "kid": "e"}]}
        )
    )
    auth = JWTAuthenticator(jwks_file=path)
    token = mint(claims(), rsa_key.private, "RS256", {"kid": rsa_key.kid})
    assert (await auth.authenticate(bearer(token))).user_id == "alice"
    encryption_key = mint(claims(), rsa_key.private, "RS256", {"kid": "e"})
    assert await reason(auth, encryption_key) == "unknown_kid"
    path.write_text("[]")
    with pytest.raises(ValueError, match="'keys' list"):
        JWTAuthenticator(jwks_file=path)
    with pytest.raises(ValueError, match="http"):
        JWTAuthenticator(jwks_url="file:///etc/passwd")


async def test_jwks_file_rotation(tmp_path: Path, rsa_key: KeyPair, rsa_key2: KeyPair) -> None:
    path = tmp_path / "jwks.json"
    path.write_text(json.dumps({"keys": [rsa_key.jwk]}))
    auth = JWTAuthenticator(jwks_file=path, jwks_min_refresh_interval=0)
    path.write_text(json.dumps({"keys": [rsa_key2.jwk]}))  # rotated on disk
    token = mint(claims(), rsa_key2.private, "RS256", {"kid": rsa_key2.kid})
    assert (await auth.authenticate(bearer(token))).user_id == "alice"


async def test_kid_that_is_not_a_string(rsa_key: KeyPair) -> None:
    auth = JWTAuthenticator(jwks={"keys": [rsa_key.jwk]})
    header = b64url(json.dumps({"alg": "RS256", "kid": {"$ne": 1}}).encode())
    token = f"{header}.{b64url(json.dumps(claims()).encode())}.c2ln"
    assert await reason(auth, token) == "malformed_token"


def test_logger_is_guard_identity() -> None:
    assert LOG.name == "guard.identity"


@pytest.mark.parametrize(
    "url",
    ["http://idp.example.com/jwks.json", "http://10.0.0.5/jwks", "HTTP://idp.example.com/k",
     "http://127.0.0.1.example.com/jwks", "http:///jwks"],
)  # fmt: skip
def test_a_key_set_over_plain_http_is_refused_unless_local(url: str) -> None:
    """Anyone on the path of a plain-HTTP key set can hand the server their own signing
    key, and then any token they sign passes: it was accepted like an https:// one."""
    with pytest.raises(ValueError, match="https"):
        JWKSKeys(url=url)
    with pytest.raises(ValueError, match="https"):
        JWTAuthenticator(jwks_url=url)


@pytest.mark.parametrize(
    "url", ["http://127.0.0.1:8080/jwks", "http://localhost/jwks", "http://[::1]:9/jwks",
            "https://idp.example.com/jwks.json"],
)  # fmt: skip
def test_a_key_set_over_https_or_from_this_machine_is_taken(url: str) -> None:
    assert JWKSKeys(url=url).url == url


async def test_cached_keys_stop_working_once_too_stale(
    jwks_server: JWKSServer, rsa_key: KeyPair
) -> None:
    """While the key set could not be fetched, the cached keys were used for ever: a key
    the provider revoked kept verifying tokens as long as the provider stayed unreachable.
    They now serve `max_stale` seconds past their `cache_ttl`, then callers are refused."""
    jwks_server.keys = [rsa_key.jwk]
    clock = {"now": 0.0}
    keys = JWKSKeys(url=jwks_server.url, cache_ttl=100, max_stale=50,
                    clock=lambda: clock["now"])  # fmt: skip
    assert await keys.key(rsa_key.kid)
    jwks_server.status = 503  # the provider is down from now on
    clock["now"] = 149.0  # stale, refresh fails: the cached key still serves
    assert await keys.key(rsa_key.kid)
    clock["now"] = 151.0
    with pytest.raises(AuthenticationError) as refused:
        await keys.key(rsa_key.kid)
    assert refused.value.reason == "jwks_unavailable"
    jwks_server.status = 200  # back: fetched again once the rate bound allows
    clock["now"] = 200.0
    assert await keys.key(rsa_key.kid)
