"""FastMCP's bearer backend refuses an expired token on each HTTP request, but the token
the guard reads can come from elsewhere: FastMCP falls back to the SDK's auth context
variable (stale on long-lived sessions, FastMCP issue #1863), and a custom provider may
hand over any `AccessToken`. The guard does not take a token past its `expires_at` as
verified: it refuses it `expired`, as `JWTAuthenticator` refuses an expired JWT."""

from __future__ import annotations

import time

import pytest
from fastmcp.server.auth import AccessToken

from guard.errors import AuthenticationError
from guard.identity import FastMCPTokenAuthenticator
from guard.identity.base import RequestInfo


def _info(expires_at: int | None) -> RequestInfo:
    token = AccessToken(token="t0ken-value", client_id="cursor", scopes=["user"],
                        expires_at=expires_at, claims={"sub": "alice"})  # fmt: skip
    return RequestInfo("http", access_token=token)


async def test_an_expired_token_is_refused() -> None:
    auth = FastMCPTokenAuthenticator()
    with pytest.raises(AuthenticationError) as caught:
        await auth.authenticate(_info(int(time.time()) - 5))
    assert caught.value.reason == "expired"


@pytest.mark.parametrize("expires_at", [None, 0, 10**11])
async def test_a_token_within_its_lifetime_or_without_one_is_read(expires_at: int | None) -> None:
    principal = await FastMCPTokenAuthenticator().authenticate(_info(expires_at))
    seen = (principal.user_id, principal.agent_id, principal.roles)
    assert seen == ("alice", "cursor", ("user",))
