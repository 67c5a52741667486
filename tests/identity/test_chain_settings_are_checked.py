"""ChainAuthenticator checks the authenticators it keeps, not an iterator it used up: a
generator passed the emptiness check, was consumed by the type check, and left an empty
chain whose every request failed with AssertionError (under `python -O`, `raise None`)."""

from __future__ import annotations

import pytest

from guard.identity import ChainAuthenticator, NoAuthenticator, RequestInfo


async def test_a_generator_of_authenticators_is_kept() -> None:
    chain = ChainAuthenticator(a for a in [NoAuthenticator()])  # type: ignore[arg-type]
    assert len(chain.authenticators) == 1
    principal = await chain.authenticate(RequestInfo(transport="http"))
    assert principal.user_id == "anonymous"


def test_an_empty_generator_is_refused() -> None:
    with pytest.raises(ValueError, match="at least one authenticator"):
        ChainAuthenticator(a for a in [])  # type: ignore[arg-type]


def test_one_authenticator_not_in_a_list_is_refused() -> None:
    with pytest.raises(TypeError, match="authenticators"):
        ChainAuthenticator(NoAuthenticator())  # type: ignore[arg-type]
