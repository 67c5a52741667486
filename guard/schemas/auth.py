"""Who is calling, in mcp-auth-guard's words: `AuthContext`, `AuthMethod`, `AuthConfig`.

These mirror mcp-auth-guard 1.0.0's pydantic models field for field (same names, same
defaults, keyword arguments) as plain dataclasses, so `import guard.schemas` stays light.
`AuthContext.to_principal()` is the bridge to the guard's own `Principal`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from guard.policy.model import Principal

__all__ = ["AuthConfig", "AuthContext", "AuthMethod"]


class AuthMethod(StrEnum):
    """Authentication methods named by mcp-auth-guard."""

    JWT = "jwt"
    API_KEY = "api_key"
    HEADER_BASED = "header_based"
    NONE = "none"


@dataclass(kw_only=True, slots=True)
class AuthConfig:
    """mcp-auth-guard's authentication settings (kept so code that builds one still runs).

    The `create_*_middleware` factories take these same parameters directly.
    """

    method: AuthMethod | str
    jwt_secret: str | None = field(default=None, repr=False)
    jwt_algorithm: str = "HS256"
    jwt_audience: str | None = None
    jwt_issuer: str | None = None
    api_key_header: str = "X-API-Key"
    api_keys: list[str] | None = field(default=None, repr=False)
    api_key_roles: dict[str, list[str]] | None = field(default=None, repr=False)
    header_mapping: dict[str, str] | None = None
    required_claims: list[str] = field(default_factory=list)


@dataclass(kw_only=True, slots=True)
class AuthContext:
    """The authenticated caller of one request (mcp-auth-guard's name for a principal).

    Example:
        ```python
        from guard.schemas import AuthContext

        ctx = AuthContext(user_id="alice", roles=["user"], authenticated=True)
        assert ctx.to_principal().roles == ("user",)
        ```
    """

    user_id: str | None = None
    roles: list[str] = field(default_factory=list)
    claims: dict[str, Any] = field(default_factory=dict)
    agent_id: str | None = None
    session_id: str | None = None
    # mcp-auth-guard defaults to False: a context nobody vouched for is not authenticated.
    authenticated: bool = False
    auth_method: AuthMethod | str | None = None

    def to_principal(self) -> Principal:
        """The same caller as the guard's immutable `Principal`."""
        method = self.auth_method
        if isinstance(self.roles, str | bytes):  # tuple() of it would be its letters
            raise TypeError(f"roles must be a list of names, not {self.roles!r}")
        return Principal(
            user_id=self.user_id,
            roles=tuple(self.roles),
            agent_id=self.agent_id,
            claims=self.claims,  # read within one decision: no copy needed
            authenticated=self.authenticated,
            auth_method=method.value if isinstance(method, AuthMethod) else method,
        )

    @classmethod
    def from_principal(cls, principal: Principal, session_id: str | None = None) -> AuthContext:
        """The `AuthContext` mcp-auth-guard code expects for a guard `Principal`."""
        return cls(
            user_id=principal.user_id,
            roles=list(principal.roles),
            claims=dict(principal.claims),
            agent_id=principal.agent_id,
            session_id=session_id,
            authenticated=principal.authenticated,
            auth_method=principal.auth_method,
        )
