"""No credential in any log line.

`conftest.py` keeps every log record of the session and fails the session at its end if
one carries a credential a test minted, or anything shaped like a JWT. These tests check
the scan can see a leak, scan what has been logged so far, and drive every failure path of
every authenticator at DEBUG to check what they log: the reason and `key_id`, nothing else.
"""

from __future__ import annotations

import logging

import pytest
from identity_kit import (
    HS_SECRET,
    KEEPER,
    bearer,
    claims,
    forge,
    http,
    leaks,
    masked,
    mint,
    remember,
)

from guard.errors import AuthenticationError
from guard.identity import (
    ApiKeyAuthenticator,
    ChainAuthenticator,
    HeaderAuthenticator,
    JWTAuthenticator,
    fingerprint,
)


def test_the_scan_sees_a_leak() -> None:
    key = remember("planted-secret-value-42")
    token = mint(claims())
    assert leaks([f"user sent {key}"]) == [f"user sent {key}"]
    assert leaks([f"Authorization: Bearer {token}"])
    # a JWT nobody remembered is caught by its shape
    import jwt

    stranger = jwt.encode({"sub": "someone-else"}, "k" * 32, algorithm="HS256")
    assert leaks([f"token={stranger}"])
    assert not leaks(["denied: reason=expired key_id=0123456789ab"])


async def test_nothing_logged_so_far_carries_a_credential() -> None:
    # the keeper is installed and sees the guard's debug lines...
    before = len(KEEPER.lines)
    with pytest.raises(AuthenticationError):
        await JWTAuthenticator(HS_SECRET).authenticate(bearer(mint(claims(iat=1, exp=2))))
    assert any("reason=expired" in line for line in KEEPER.lines[before:])
    # ...and nothing it kept, from any test that ran before this one, carries a credential
    found = leaks(KEEPER.lines)
    assert not found, [masked(f) for f in found[:3]]


async def test_failure_logs_name_the_reason_and_key_id_only(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    key = remember("scan-api-key-000001")
    proxy_secret = remember("scan-proxy-secret-00001")
    chain = ChainAuthenticator(
        [
            JWTAuthenticator(HS_SECRET, audience="mcp"),
            ApiKeyAuthenticator({key: ["user"]}),
            HeaderAuthenticator(trusted_proxies=[], shared_secret=proxy_secret),
        ]
    )
    expired = mint(claims(aud="mcp", iat=1, exp=2))
    attempts = [
        bearer(expired),
        bearer(mint(claims(aud="other"))),
        bearer(forge({"alg": "none"}, claims())),
        bearer(expired[:-3] + "AAA"),
        bearer("x" * 9000),
        http({"X-API-Key": key + "-wrong"}),
        http({"X-User-Id": "mallory", "X-Guard-Proxy-Secret": proxy_secret + "x"}),
        http({"X-API-Key": key}),  # success also logs (key_id)
        bearer(mint(claims(aud="mcp"))),
    ]
    for info in attempts:
        try:
            await chain.authenticate(info)
        except AuthenticationError as exc:
            assert not leaks([str(exc)])
    text = caplog.text
    assert "reason=expired" in text and "reason=invalid_api_key" in text
    assert f"key_id={fingerprint(key)}" in text  # what identifies the key in logs
    assert not leaks(text), [masked(f) for f in leaks(text)[:3]]
    for secret in (key, proxy_secret, expired, HS_SECRET):
        assert secret not in text
