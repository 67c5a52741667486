"""The principal of a token FastMCP's own auth provider has already verified.

When the server runs with a FastMCP `auth=` provider (JWTVerifier, an OAuth proxy, ...),
FastMCP verifies the bearer token before the request reaches middleware. Verifying it a
second time would need the same keys and could only disagree; this authenticator reads
the verified `AccessToken` (claims, scopes, client id) instead.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any, Final

from guard._settings import flag
from guard.identity._common import MISSING_CREDENTIALS, fail, fingerprint, refuse_repeated
from guard.identity.base import RequestInfo
from guard.identity.claims import DEFAULT_CLAIMS, ClaimMapping, claim_at
from guard.policy.model import Principal

__all__ = ["FastMCPTokenAuthenticator"]

# FastMCP verifies the first `Authorization` header; a second one says the token is in doubt.
_READ: Final = frozenset({"authorization"})

# What FastMCP's `JWTVerifier` puts in `client_id` for a token that names neither a client
# nor a subject (one naming only a subject gets the subject): a stand-in, not a client.
_NO_CLIENT: Final = "unknown"


class FastMCPTokenAuthenticator:
    """Maps FastMCP's verified `AccessToken` to a `Principal`.

    Roles are the token's scopes plus whatever `roles_claim` paths name; the user id is
    `user_id_claim` (default `sub`), else the token's subject, else its client id; the
    agent id is the OAuth client id FastMCP read, unless it only stands in for a client the
    token does not name (FastMCP's verifiers fill it with the subject, or `"unknown"`),
    else the token's `azp`, `client_id` or `agent_id` claim.

    Example:
        ```python
        from guard.identity import FastMCPTokenAuthenticator

        auth = FastMCPTokenAuthenticator(roles_claim=["roles", "realm_access.roles"])
        ```
    """

    method = "fastmcp"

    def __init__(
        self,
        *,
        user_id_claim: str = "sub",
        roles_claim: str | Sequence[str] = ("roles",),
        include_scopes: bool = True,
        claims: Sequence[str] = DEFAULT_CLAIMS,
    ) -> None:
        self.include_scopes = flag("include_scopes", include_scopes)
        self.mapping = ClaimMapping(user_id=user_id_claim, roles=roles_claim, keep=claims)

    async def authenticate(self, info: RequestInfo) -> Principal:
        """Read the principal from `info.access_token`.

        Raises:
            AuthenticationError: `missing_credentials` when FastMCP verified no token;
                `expired` when the token is past its `expires_at`;
                `ambiguous_credentials` when the request carried two `Authorization`
                headers; `invalid_claims` when a roles claim has the wrong type.
        """
        refuse_repeated(info.repeated, _READ)
        token: Any = info.access_token
        if token is None:
            raise fail(MISSING_CREDENTIALS, "FastMCP verified no access token")
        # FastMCP's bearer backend checks this on each HTTP request, but the token read
        # here may be the SDK's context variable's (stale on a long-lived session) or a
        # custom provider's: past its `expires_at` (0 or None: none), it is not taken.
        expires_at = getattr(token, "expires_at", None)
        if type(expires_at) is int and expires_at and expires_at < time.time():
            raise fail("expired", "the verified access token has expired")
        claims = dict(getattr(token, "claims", None) or {})
        subject = getattr(token, "subject", None)
        client_id = self._client_of(token, subject, claims) or self.mapping.agent_of(claims)
        user = claim_at(claims, self.mapping.user_id)
        user = user or subject or client_id
        if not isinstance(user, str | int) or isinstance(user, bool) or user == "":
            raise fail("missing_claim", "verified token names no user")
        scopes = list(getattr(token, "scopes", None) or []) if self.include_scopes else []
        roles = dict.fromkeys([*self.mapping.roles_of(claims), *scopes])
        raw = getattr(token, "token", None)
        return Principal(
            user_id=str(user),
            roles=tuple(r for r in roles if isinstance(r, str)),
            agent_id=client_id,
            claims=self.mapping.kept(claims),
            authenticated=True,
            auth_method=self.method,
            key_id=fingerprint(raw) if isinstance(raw, str) and raw else None,
        )

    @staticmethod
    def _client_of(token: Any, subject: Any, claims: dict[str, Any]) -> str | None:
        """FastMCP's `client_id`, unless it stands in for a client the token does not name:
        the subject (`JWTVerifier`, Google, GitHub... fill it so), or `"unknown"` for a
        token without a subject. Taken for an agent, the one would make every user an
        agent of their own name, and the other every subject-less token one user."""
        client_id = getattr(token, "client_id", None)
        if not isinstance(client_id, str) or not client_id:
            return None
        if client_id in (subject, claims.get("sub")):
            return None
        if client_id == _NO_CLIENT and subject is None and "sub" not in claims:
            return None
        return client_id
