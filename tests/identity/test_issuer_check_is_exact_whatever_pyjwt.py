"""`issuer=` accepts exactly the issuers configured, whichever pyjwt `pyproject.toml` lets in
(found in review).

`JWTAuthenticator` handed `issuer` to `jwt.decode`, whose check changed across the
versions allowed (`pyjwt[crypto]>=2.8`): pyjwt 2.10.0 tested a str issuer with `in`, a
substring match (CVE-2024-53861), so a token signed with the trusted key and carrying
`iss: ""` or `iss: "https://idp.example.com/"` passed `issuer="https://idp.example.com/a"`;
pyjwt 2.8 and 2.9 compared with `!=`, so an issuer list never matched anything. The tests
put each of those checks in place of the installed one.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import jwt
import pytest
from identity_kit import HS_SECRET, bearer, claims, mint

from guard.errors import AuthenticationError
from guard.identity import JWTAuthenticator

ISSUER = "https://idp.example.com/tenant-a"


def _iss_2_10_0(self: Any, payload: dict[str, Any], issuer: Any) -> None:
    """pyjwt 2.10.0's `PyJWT._validate_iss`."""
    if issuer is None:
        return
    if "iss" not in payload:
        raise jwt.MissingRequiredClaimError("iss")
    if isinstance(issuer, Sequence):
        if payload["iss"] not in issuer:
            raise jwt.InvalidIssuerError("Invalid issuer")
    elif payload["iss"] != issuer:
        raise jwt.InvalidIssuerError("Invalid issuer")


def _iss_2_8(self: Any, payload: dict[str, Any], issuer: Any) -> None:
    """pyjwt 2.8's `PyJWT._validate_iss`."""
    if issuer is None:
        return
    if "iss" not in payload:
        raise jwt.MissingRequiredClaimError("iss")
    if payload["iss"] != issuer:
        raise jwt.InvalidIssuerError("Invalid issuer")


async def outcome(auth: JWTAuthenticator, **extra: Any) -> str:
    try:
        return (await auth.authenticate(bearer(mint(claims(**extra))))).user_id or ""
    except AuthenticationError as refused:
        return refused.reason


@pytest.mark.parametrize(
    "validate_iss", [_iss_2_10_0, _iss_2_8, None], ids=["2.10.0", "2.8", "now"]
)
async def test_issuer_is_matched_exactly(
    monkeypatch: pytest.MonkeyPatch, validate_iss: Any
) -> None:
    if validate_iss is not None:
        monkeypatch.setattr(jwt.api_jwt.PyJWT, "_validate_iss", validate_iss)
    one = JWTAuthenticator(HS_SECRET, issuer=ISSUER)
    both = JWTAuthenticator(HS_SECRET, issuer=[ISSUER, "https://other.test"])
    for auth in (one, both):
        assert await outcome(auth, iss=ISSUER) == "alice"
        for near in ("", "https://idp.example.com/", "tenant-a", ISSUER + "/x"):
            assert await outcome(auth, iss=near) == "invalid_issuer", near
        assert await outcome(auth) == "missing_claim"
    assert await outcome(both, iss="https://other.test") == "alice"
    assert await outcome(one, iss="https://other.test") == "invalid_issuer"
