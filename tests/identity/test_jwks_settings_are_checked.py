"""JWKSKeys (and JWTAuthenticator's jwks_* options) refuse, at construction and naming
the parameter, a time that bounds nothing: with `max_stale` NaN or infinite a key the
provider revoked kept verifying tokens for as long as the provider was unreachable; with
`min_refresh_interval` NaN any caller could make the server fetch the key set on every
request (random `kid`s)."""

from __future__ import annotations

import pytest

from guard.identity import JWKSKeys, JWTAuthenticator

URL = "https://idp.test/.well-known/jwks.json"
OPTIONS = ["min_refresh_interval", "cache_ttl", "max_stale", "timeout"]


@pytest.mark.parametrize("option", OPTIONS)
@pytest.mark.parametrize("value", [float("nan"), float("inf"), -1.0])
def test_a_time_that_bounds_nothing_is_refused(option: str, value: float) -> None:
    with pytest.raises(ValueError, match=option):
        JWKSKeys(url=URL, **{option: value})
    with pytest.raises(ValueError, match=option):
        JWTAuthenticator(jwks_url=URL, **{f"jwks_{option}": value})


@pytest.mark.parametrize("option", OPTIONS)
@pytest.mark.parametrize("value", ["30", None])
def test_a_time_that_is_not_a_number_is_refused(option: str, value: object) -> None:
    with pytest.raises(TypeError, match=option):
        JWKSKeys(url=URL, **{option: value})


def test_a_fetch_without_time_is_refused() -> None:
    with pytest.raises(ValueError, match="timeout"):
        JWKSKeys(url=URL, timeout=0)
    JWKSKeys(url=URL, min_refresh_interval=0, cache_ttl=0, max_stale=0)  # all meaningful
