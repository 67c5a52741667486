"""Several ways in: JWT for people, API keys for jobs, tried in order."""

from __future__ import annotations

from collections.abc import Sequence

from guard.errors import AuthenticationError
from guard.identity._common import specificity
from guard.identity.base import Authenticator, RequestInfo
from guard.policy.model import Principal

__all__ = ["ChainAuthenticator"]


class ChainAuthenticator:
    """The first authenticator that succeeds names the principal.

    If all fail, the most specific failure is reported: a presented-but-bad credential
    (`expired`, `invalid_api_key`, ...) beats `disallowed_algorithm` (often just "a token
    for another authenticator of the chain"), which beats `untrusted_proxy`, which beats
    `missing_credentials`; among equals, the earlier authenticator's. So a caller with an
    expired token sees `expired`, not the API key authenticator's `missing_credentials`.

    Example:
        ```python
        from guard.identity import ApiKeyAuthenticator, ChainAuthenticator, JWTAuthenticator

        auth = ChainAuthenticator([
            JWTAuthenticator(secret="s3cret-at-least-32-bytes-long-000"),
            ApiKeyAuthenticator({"ci-key-0001": ["deployer"]}),
        ])
        ```
    """

    def __init__(self, authenticators: Sequence[Authenticator]) -> None:
        if isinstance(authenticators, Authenticator):
            raise TypeError("authenticators must be a list of authenticators, not one")
        # a tuple first: a generator would pass the checks, used up, and leave no one
        chain = tuple(authenticators)
        if not chain:
            raise ValueError("ChainAuthenticator needs at least one authenticator")
        for auth in chain:
            if not isinstance(auth, Authenticator):
                raise TypeError(f"{auth!r} is not an Authenticator (method + authenticate)")
        self.authenticators = chain
        self.method = "+".join(a.method for a in self.authenticators)

    async def authenticate(self, info: RequestInfo) -> Principal:
        """Try each authenticator in order.

        Raises:
            AuthenticationError: the most specific failure when every authenticator failed.
        """
        best: AuthenticationError | None = None
        for auth in self.authenticators:
            try:
                return await auth.authenticate(info)
            except AuthenticationError as exc:
                if best is None or specificity(exc.reason) > specificity(best.reason):
                    best = exc
        assert best is not None
        raise best
