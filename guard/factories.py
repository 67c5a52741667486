"""mcp-auth-guard's one-call constructors: an authenticator plus a `GuardMiddleware`.

Each takes mcp-auth-guard 1.0.0's parameters (same names, same positions), the options of
the authenticator it builds, and passes every other keyword (`audit`, `shadow`,
`telemetry`, `principal`, ...) to `GuardMiddleware`.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from guard.identity.base import Authenticator
    from guard.middleware import GuardMiddleware

__all__ = [
    "create_api_key_middleware",
    "create_header_middleware",
    "create_jwt_middleware",
    "create_no_auth_middleware",
]

logger = logging.getLogger("guard.factories")


def _middleware(
    policies: Any, authenticator: Authenticator, kwargs: dict[str, Any]
) -> GuardMiddleware:
    # Imported here so `guard.factories` stays importable without FastMCP loaded.
    from guard.middleware import GuardMiddleware

    # mcp-auth-guard's switch for its audit log; here records go to the decision store.
    if kwargs.pop("enable_audit_logging", True) is False:
        kwargs.setdefault("audit", None)
    return GuardMiddleware(policies, authenticator=authenticator, **kwargs)


def create_jwt_middleware(
    jwt_secret: str | bytes | None = None,
    policies: Any = None,
    jwt_algorithm: str | Sequence[str] | None = None,
    jwt_audience: str | Sequence[str] | None = None,
    jwt_issuer: str | Sequence[str] | None = None,
    required_claims: str | Sequence[str] | None = None,
    *,
    jwt_public_key: str | bytes | Path | None = None,
    jwks_url: str | None = None,
    jwks_file: str | Path | None = None,
    jwks: Mapping[str, Any] | None = None,
    jwt_leeway: float | timedelta = 30.0,
    require_exp: bool = True,
    user_id_claim: str = "sub",
    roles_claim: str | Sequence[str] = "roles",
    agent_id_claims: str | Sequence[str] = ("azp", "client_id", "agent_id"),
    claims: str | Sequence[str] | None = None,
    token_header: str = "authorization",  # noqa: S107 - a header name
    agent_id_header: str | None = "x-agent-id",
    max_token_bytes: int = 8192,
    jwks_min_refresh_interval: float = 30.0,
    jwks_cache_ttl: float = 3600.0,
    jwks_max_stale: float = 86400.0,
    jwks_timeout: float = 5.0,
    **kwargs: Any,
) -> GuardMiddleware:
    """A `GuardMiddleware` that authenticates bearer JWTs (`JWTAuthenticator`).

    Give one key: `jwt_secret` (HMAC), `jwt_public_key` (PEM), `jwks_url`, `jwks_file`
    or `jwks`. `jwt_algorithm` is the allow-list (one name or several); by default the
    algorithm the key implies (`HS256` for a secret, as in mcp-auth-guard). The other
    keywords are `JWTAuthenticator`'s (`token_header` is its `header`), `jwks_*` included.

    Example:
        ```python
        from guard import create_jwt_middleware

        middleware = create_jwt_middleware(
            jwt_secret="your-secret-key-of-at-least-32-bytes",
            policies="./policies.yaml",
            required_claims=["sub", "role"],
            audit=None,
        )
        ```
    """
    from guard.identity.claims import DEFAULT_CLAIMS
    from guard.identity.jwt_auth import JWTAuthenticator

    if (
        jwt_public_key is None
        and jwt_secret is not None
        and (jwt_secret.encode() if isinstance(jwt_secret, str) else jwt_secret)
        .lstrip()
        .startswith(b"-----BEGIN")
    ):
        # mcp-auth-guard took an RS256 public key as `jwt_secret`; it is a key, not a secret.
        jwt_secret, jwt_public_key = None, jwt_secret
    auth = JWTAuthenticator(
        jwt_secret,
        public_key=jwt_public_key,
        jwks=jwks,
        jwks_file=jwks_file,
        jwks_url=jwks_url,
        algorithms=jwt_algorithm,
        audience=jwt_audience,
        issuer=jwt_issuer,
        leeway=jwt_leeway,
        required_claims=required_claims or (),
        require_exp=require_exp,
        user_id_claim=user_id_claim,
        roles_claim=roles_claim,
        agent_id_claims=agent_id_claims,
        claims=DEFAULT_CLAIMS if claims is None else claims,
        header=token_header,
        agent_id_header=agent_id_header,
        max_token_bytes=max_token_bytes,
        jwks_min_refresh_interval=jwks_min_refresh_interval,
        jwks_cache_ttl=jwks_cache_ttl,
        jwks_max_stale=jwks_max_stale,
        jwks_timeout=jwks_timeout,
    )
    return _middleware(policies, auth, kwargs)


def create_api_key_middleware(
    policies: Any = None,
    api_key_roles: Mapping[str, Any] | None = None,
    api_keys: Sequence[str] | None = None,
    api_key_header: str = "X-API-Key",
    *,
    api_keys_file: str | Path | None = None,
    api_keys_env: str | None = None,
    accept_bearer: bool = False,
    key_id_secret: str | bytes | None = None,
    agent_id_header: str | None = "x-agent-id",
    **kwargs: Any,
) -> GuardMiddleware:
    """A `GuardMiddleware` that authenticates API keys (`ApiKeyAuthenticator`).

    `api_key_roles` maps each key (or its `sha256:<hex>` digest) to roles or to
    `{"user_id", "roles", "agent_id"}`; `api_keys` lists keys given the role `api_user`,
    used only when `api_key_roles` is not given (as in mcp-auth-guard 1.0.0).

    Example:
        ```python
        from guard import create_api_key_middleware

        middleware = create_api_key_middleware(
            policies="./policies.yaml",
            api_key_roles={"user-key-123": ["user"], "admin-key-456": ["admin"]},
            audit=None,
        )
        ```
    """
    from guard.identity.api_key import ApiKeyAuthenticator

    if not (api_key_roles or api_keys or api_keys_file or api_keys_env):
        raise ValueError("Either api_key_roles or api_keys must be provided")
    if isinstance(api_keys, str | bytes):
        # a string is a sequence of one-character keys: every letter would let callers in
        raise TypeError("api_keys must be a list of keys, not one string")
    if api_key_roles and api_keys:
        # as mcp-auth-guard 1.0.0: the roles mapping is the keys; the list is a fallback
        logger.warning(
            "api_keys is ignored because api_key_roles is given (as in mcp-auth-guard): "
            "put every key in api_key_roles"
        )
        api_keys = None
    keys: dict[str, Any] = {k: None for k in api_keys or ()}
    keys.update(api_key_roles or {})
    auth = ApiKeyAuthenticator(
        keys or None,
        file=api_keys_file,
        env=api_keys_env,
        header=api_key_header,
        accept_bearer=accept_bearer,
        key_id_secret=key_id_secret,
        agent_id_header=agent_id_header,
    )
    return _middleware(policies, auth, kwargs)


def create_header_middleware(
    policies: Any = None,
    header_mapping: Mapping[str, str] | None = None,
    *,
    trusted_proxies: Sequence[str] = ("127.0.0.0/8", "::1/128"),
    shared_secret: str | None = None,
    secret_header: str = "x-guard-proxy-secret",  # noqa: S107 - a header name
    roles_separator: str = ",",
    **kwargs: Any,
) -> GuardMiddleware:
    """A `GuardMiddleware` that believes identity headers from trusted proxies only.

    Example:
        ```python
        from guard import create_header_middleware

        middleware = create_header_middleware(
            policies="./policies.yaml",
            header_mapping={"x-user-id": "user_id", "x-user-roles": "roles"},
            trusted_proxies=["127.0.0.1/32", "10.0.0.0/8"],
            audit=None,
        )
        ```
    """
    from guard.identity.headers import HeaderAuthenticator

    auth = HeaderAuthenticator(
        header_mapping,
        trusted_proxies=trusted_proxies,
        shared_secret=shared_secret,
        secret_header=secret_header,
        roles_separator=roles_separator,
    )
    return _middleware(policies, auth, kwargs)


def create_no_auth_middleware(
    policies: Any = None, *, agent_id_header: str | None = "x-agent-id", **kwargs: Any
) -> GuardMiddleware:
    """A `GuardMiddleware` where every caller is `anonymous`; policies still decide.

    Example:
        ```python
        from guard import create_no_auth_middleware

        middleware = create_no_auth_middleware(policies="./policies.yaml", audit=None)
        ```
    """
    from guard.identity.local import NoAuthenticator

    return _middleware(policies, NoAuthenticator(agent_id_header=agent_id_header), kwargs)
