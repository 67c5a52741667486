"""Identities that need no credential: the stdio launcher's user, and anonymous callers.

A stdio server is started by one client (an IDE, a desktop app) for one user; there are no
headers to read. Whoever launches it says who that user is, in configuration or the
environment, and records show `auth_method="stdio"` so nobody mistakes it for a verified
token. `NoAuthenticator` is mcp-auth-guard's no-auth mode: everyone is `anonymous`.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Final

from guard._settings import names
from guard.identity._common import MISSING_CREDENTIALS, fail, refuse_repeated
from guard.identity.base import RequestInfo
from guard.policy.model import Principal

__all__ = ["NoAuthenticator", "StdioAuthenticator"]

_LOCAL_TRANSPORTS: Final = ("stdio", "memory")


class StdioAuthenticator:
    """The principal of a locally launched server, from configuration or environment.

    `user_id`/`roles`/`agent_id` given here win; otherwise `MCP_GUARD_USER`,
    `MCP_GUARD_ROLES` (comma-separated) and `MCP_GUARD_AGENT` are read once, at construction.
    Requests over a network transport are refused (`missing_credentials`): the launcher's
    word covers the launcher's pipe, not anyone who can reach a port.

    Example:
        ```python
        from guard.identity import StdioAuthenticator

        auth = StdioAuthenticator(user_id="dev", roles=["developer"])
        ```
    """

    method = "stdio"

    def __init__(
        self,
        user_id: str | None = None,
        roles: Sequence[str] | None = None,
        agent_id: str | None = None,
        *,
        user_env: str = "MCP_GUARD_USER",
        roles_env: str = "MCP_GUARD_ROLES",
        agent_env: str = "MCP_GUARD_AGENT",
        transports: Sequence[str] = _LOCAL_TRANSPORTS,
    ) -> None:
        for name, value in (("user_id", user_id), ("agent_id", agent_id)):
            if value is not None and not isinstance(value, str):
                raise TypeError(f"{name} must be a string, not {type(value).__name__}")
        user = user_id or os.environ.get(user_env) or None
        if roles is None:
            roles = [r.strip() for r in os.environ.get(roles_env, "").split(",") if r.strip()]
        roles = names("roles", roles)
        # one string is its letters: `"stdio"` would have refused the stdio transport
        self.transports = frozenset(names("transports", transports))
        if not self.transports:
            raise ValueError("transports must name at least one transport")
        self._principal = (
            Principal(
                user_id=user,
                roles=roles,
                agent_id=agent_id or os.environ.get(agent_env) or None,
                authenticated=True,
                auth_method=self.method,
            )
            if user
            else None
        )

    async def authenticate(self, info: RequestInfo) -> Principal:
        """Return the configured principal for a local transport.

        Raises:
            AuthenticationError: `missing_credentials` when no user is configured or the
                request came over a network transport.
        """
        if self._principal is None:
            raise fail(MISSING_CREDENTIALS, "no stdio user configured (MCP_GUARD_USER)")
        if info.transport not in self.transports:
            raise fail(MISSING_CREDENTIALS, f"stdio identity does not cover {info.transport}")
        return self._principal


class NoAuthenticator:
    """Everyone is `anonymous` (authenticated, as in mcp-auth-guard's no-auth mode).

    Policies still decide; they just cannot tell callers apart except by the
    self-declared `X-Agent-Id` header.

    Example:
        ```python
        from guard.identity import NoAuthenticator

        auth = NoAuthenticator()
        ```
    """

    method = "none"

    def __init__(self, *, agent_id_header: str | None = "x-agent-id") -> None:
        self.agent_id_header = agent_id_header.lower() if agent_id_header else None
        self._read = frozenset((self.agent_id_header,) if self.agent_id_header else ())
        self._anonymous = Principal(user_id="anonymous", authenticated=True, auth_method="none")

    async def authenticate(self, info: RequestInfo) -> Principal:
        """Return the anonymous principal, with the declared agent id if any; a request
        declaring two agent ids is refused (`ambiguous_credentials`)."""
        refuse_repeated(info.repeated, self._read)
        agent = info.headers.get(self.agent_id_header) if self.agent_id_header else None
        if not agent:
            return self._anonymous
        return Principal(user_id="anonymous", agent_id=agent, auth_method="none")
