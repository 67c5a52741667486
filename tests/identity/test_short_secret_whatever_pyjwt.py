"""A short HMAC secret works with every pyjwt `pyproject.toml` lets in (found in review).

`JWTAuthenticator` silenced pyjwt's per-request `jwt.InsecureKeyLengthWarning`, which pyjwt
added in 2.11.0; with pyjwt 2.10.1 (the declared floor) looking the name up raised
`AttributeError` inside the decode's `try`, so every token signed with a secret shorter
than RFC 7518 asks (the seed page's `jwt_secret="your-secret-key"`) was refused as
`invalid_token`. The test removes the name, as pyjwt 2.10.1 has it.
"""

from __future__ import annotations

import warnings

import jwt
import pytest
from identity_kit import bearer, claims, mint, remember

from guard.identity import JWTAuthenticator


@pytest.mark.parametrize("has_warning", [True, False], ids=["pyjwt>=2.11", "pyjwt-2.10"])
async def test_a_short_secret_authenticates(
    has_warning: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    if not has_warning:
        monkeypatch.delattr(jwt, "InsecureKeyLengthWarning", raising=False)
    short = remember("your-secret-key")  # the seed page's example
    auth = JWTAuthenticator(short)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        token = mint(claims(), key=short)
    assert (await auth.authenticate(bearer(token))).user_id == "alice"
