"""What an authenticator sees (`RequestInfo`) and what it must do (`Authenticator`)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Protocol, runtime_checkable

from guard.policy.model import Principal

__all__ = ["Authenticator", "RequestInfo"]


@dataclass(frozen=True, slots=True)
class RequestInfo:
    """The transport-level facts about one MCP request.

    Attributes:
        transport: `stdio`, `http`, `sse` or `memory`.
        headers: HTTP headers with lower-cased names, *including* `authorization`
            (FastMCP's `get_http_headers()` strips it by default; the middleware does not).
            Empty for stdio and in-memory transports. A repeated header keeps its last value
            here and is named in `repeated`.
        client_host: the peer address of the HTTP connection, when known.
        session_id: the MCP session id, when known.
        access_token: FastMCP's verified `AccessToken` when the server has an auth provider.
        repeated: the (lower-cased) names of headers the request carried more than once.
            Which copy of a credential to believe is anybody's guess (a proxy that appends
            its header leaves the client's copy first): authenticators refuse the request
            when one of the headers they read is here (`ambiguous_credentials`).
    """

    transport: str
    headers: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    client_host: str | None = None
    session_id: str | None = None
    access_token: Any = None
    repeated: frozenset[str] = frozenset()


@runtime_checkable
class Authenticator(Protocol):
    """Turns a request into a `Principal`, or raises `AuthenticationError(reason)`.

    Implementations must never raise anything else on purpose, never log a credential,
    and never put one into the principal (use `key_id` fingerprints).
    """

    method: str

    async def authenticate(self, info: RequestInfo) -> Principal: ...
