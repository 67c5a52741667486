"""A JWKS fetch goes on when the request that started it is cancelled (its client timed
out or went away). Found in review: the fetch was cancelled with it, after it had taken the
refresh slot, so every request that waited behind it found no keys and was refused
(`unknown_kid`) until `min_refresh_interval` had passed: a cold start or a key rotation
where the first caller gives up turned every caller away for 30 s."""

from __future__ import annotations

import asyncio

from identity_kit import JWKSServer, KeyPair, bearer, claims, mint

from guard.identity import JWTAuthenticator


async def test_callers_behind_a_cancelled_fetch_get_its_keys(
    jwks_server: JWKSServer, rsa_key: KeyPair
) -> None:
    jwks_server.keys = [rsa_key.jwk]
    jwks_server.delay = 0.5
    auth = JWTAuthenticator(jwks_url=jwks_server.url, audience="mcp")
    token = mint(claims(aud="mcp"), rsa_key.private, rsa_key.alg, {"kid": rsa_key.kid})
    first = asyncio.create_task(auth.authenticate(bearer(token)))
    await asyncio.sleep(0.1)  # its fetch is under way
    others = [asyncio.create_task(auth.authenticate(bearer(token))) for _ in range(3)]
    await asyncio.sleep(0.1)
    first.cancel()  # the first caller leaves
    principals = await asyncio.gather(*others)
    assert [p.user_id for p in principals] == ["alice"] * 3
    assert jwks_server.hits == 1
    assert first.cancelled()
