"""JWTAuthenticator refuses, at construction and naming the parameter, a setting that
would bound nothing: a NaN or infinite leeway let every expired token in."""

from __future__ import annotations

import datetime
import time

import pytest
from identity_kit import HS_SECRET, bearer, claims, mint

from guard import create_jwt_middleware
from guard.identity import JWTAuthenticator


@pytest.mark.parametrize("leeway", [float("nan"), float("inf"), -1.0])
def test_a_leeway_that_bounds_nothing_is_refused(leeway: float) -> None:
    with pytest.raises(ValueError, match="leeway"):
        JWTAuthenticator(HS_SECRET, leeway=leeway)
    with pytest.raises(ValueError, match="leeway"):
        create_jwt_middleware(HS_SECRET, {"name": "p"}, jwt_leeway=leeway, audit=None)


@pytest.mark.parametrize("leeway", ["30", None, True])
def test_a_leeway_that_is_not_a_number_is_refused(leeway: object) -> None:
    with pytest.raises(TypeError, match="leeway"):
        JWTAuthenticator(HS_SECRET, leeway=leeway)  # type: ignore[arg-type]


async def test_a_timedelta_leeway_counts_its_seconds() -> None:
    auth = JWTAuthenticator(HS_SECRET, leeway=datetime.timedelta(minutes=1))
    assert auth.leeway == 60
    token = mint(claims(exp=int(time.time()) - 30))
    assert (await auth.authenticate(bearer(token))).user_id == "alice"


@pytest.mark.parametrize("size", [float("nan"), 0, -1, 8192.5, "8192"])
def test_a_token_size_cap_that_caps_nothing_is_refused(size: object) -> None:
    with pytest.raises((TypeError, ValueError), match="max_token_bytes"):
        JWTAuthenticator(HS_SECRET, max_token_bytes=size)  # type: ignore[arg-type]
