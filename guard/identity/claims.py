"""Turning verified token claims into a principal's user id, roles, agent id and claims.

Identity providers put roles in different places: `roles`, `groups`, Keycloak's
`realm_access.roles`, OAuth's space-separated `scope` (or Azure's `scp`). A `ClaimMapping`
names where to look, once, and is applied to every verified token.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Final

from guard.identity._common import fail

__all__ = ["DEFAULT_CLAIMS", "ClaimMapping", "claim_at"]

# Claims that identify and scope a token without revealing anything secret.
DEFAULT_CLAIMS: Final = ("iss", "sub", "aud", "azp", "client_id", "scope", "scp", "exp", "iat")
_SPACE_SEPARATED: Final = frozenset({"scope", "scp"})
_MISSING: Final = object()


def claim_at(claims: Mapping[str, Any], path: str) -> Any:
    """Return the claim at a dotted `path` (`realm_access.roles`), or `None` if absent.

    A claim whose own name contains dots (`https://example.com/roles`) is found too:
    the whole path is tried as one key first.
    """
    if path in claims:
        return claims[path]
    node: Any = claims
    for part in path.split("."):
        if not isinstance(node, Mapping):
            return None
        node = node.get(part, _MISSING)
        if node is _MISSING:
            return None
    return node


def _roles_from(value: Any, path: str) -> Iterable[str]:
    if value is None:
        return ()
    if isinstance(value, str):
        # `scope: "read write"` is a list in OAuth's notation; elsewhere a string is one role
        # (mcp-auth-guard reads `roles: "admin"` as ["admin"]).
        if path.rsplit(".", 1)[-1] in _SPACE_SEPARATED:
            return value.split()
        return (value,) if value else ()
    if isinstance(value, list | tuple) and all(isinstance(v, str) for v in value):
        return value
    raise fail("invalid_claims", f"claim {path!r} must be a string or a list of strings")


@dataclass(frozen=True, slots=True)
class ClaimMapping:
    """Where a token's claims say who the caller is.

    Attributes:
        user_id: claim path of the user id (`sub` by default).
        roles: claim paths whose values are merged into the roles, in order.
        agent_id: claim paths tried in order for the agent / OAuth client id.
        keep: claims copied onto `Principal.claims` (an allow-list; everything else,
            and the token itself, is dropped).

    Example:
        ```python
        from guard.identity import ClaimMapping

        mapping = ClaimMapping(roles=("realm_access.roles", "scope"))
        claims = {"sub": "ann", "realm_access": {"roles": ["admin"]}, "scope": "read write"}
        assert mapping.roles_of(claims) == ("admin", "read", "write")
        ```
    """

    user_id: str = "sub"
    roles: Sequence[str] = ("roles",)
    agent_id: Sequence[str] = ("azp", "client_id", "agent_id")
    keep: Sequence[str] = DEFAULT_CLAIMS
    _keep: frozenset[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        roles = (self.roles,) if isinstance(self.roles, str) else tuple(self.roles)
        agent = (self.agent_id,) if isinstance(self.agent_id, str) else tuple(self.agent_id)
        keep = (self.keep,) if isinstance(self.keep, str) else tuple(self.keep)
        for name, paths in (("roles", roles), ("agent_id", agent), ("keep", keep)):
            if not all(isinstance(p, str) and p for p in paths):
                raise ValueError(f"ClaimMapping.{name} must be claim paths (non-empty strings)")
        if not isinstance(self.user_id, str) or not self.user_id:
            raise ValueError("ClaimMapping.user_id must be a claim path")
        object.__setattr__(self, "roles", roles)
        object.__setattr__(self, "agent_id", agent)
        object.__setattr__(self, "keep", keep)
        object.__setattr__(self, "_keep", frozenset(keep))

    def user_of(self, claims: Mapping[str, Any]) -> str:
        """The user id; a token without one cannot name a principal (`missing_claim`)."""
        value = claim_at(claims, self.user_id)
        if value is None or value == "":
            raise fail("missing_claim", f"token has no {self.user_id!r} claim")
        if isinstance(value, bool) or not isinstance(value, str | int):
            raise fail("invalid_claims", f"claim {self.user_id!r} must be a string")
        return str(value)

    def roles_of(self, claims: Mapping[str, Any]) -> tuple[str, ...]:
        """Roles from every configured path, de-duplicated, in order."""
        out: dict[str, None] = {}
        for path in self.roles:
            for role in _roles_from(claim_at(claims, path), path):
                out[role] = None
        return tuple(out)

    def agent_of(self, claims: Mapping[str, Any]) -> str | None:
        """The first string found at an agent id path."""
        for path in self.agent_id:
            value = claim_at(claims, path)
            if isinstance(value, str) and value:
                return value
        return None

    def kept(self, claims: Mapping[str, Any]) -> Mapping[str, Any]:
        """Only the allow-listed top-level claims, read-only."""
        return MappingProxyType({k: v for k, v in claims.items() if k in self._keep})
