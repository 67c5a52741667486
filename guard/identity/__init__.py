"""Who is calling: authenticators that turn a request into a `Principal` or refuse it.

Each authenticator has a `method` name and `async authenticate(RequestInfo) -> Principal`,
raising `AuthenticationError(reason)` on failure; the middleware denies and records that
reason. Names load lazily, so an API-key deployment never imports pyjwt or cryptography.

```python
from guard.identity import ApiKeyAuthenticator, ChainAuthenticator, JWTAuthenticator

auth = ChainAuthenticator([
    JWTAuthenticator(jwks_url="https://idp.example.com/.well-known/jwks.json", audience="mcp"),
    ApiKeyAuthenticator(env="MCP_GUARD_API_KEYS"),
])
```
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_EXPORTS: dict[str, str] = {
    "Authenticator": "guard.identity.base",
    "RequestInfo": "guard.identity.base",
    "JWTAuthenticator": "guard.identity.jwt_auth",
    "JWKSKeys": "guard.identity.jwks",
    "ClaimMapping": "guard.identity.claims",
    "ApiKeyAuthenticator": "guard.identity.api_key",
    "hash_api_key": "guard.identity.api_key",
    "HeaderAuthenticator": "guard.identity.headers",
    "FastMCPTokenAuthenticator": "guard.identity.fastmcp_token",
    "StdioAuthenticator": "guard.identity.local",
    "NoAuthenticator": "guard.identity.local",
    "ChainAuthenticator": "guard.identity.chain",
    "fingerprint": "guard.identity._common",
}

__all__ = [
    "ApiKeyAuthenticator",
    "Authenticator",
    "ChainAuthenticator",
    "ClaimMapping",
    "FastMCPTokenAuthenticator",
    "HeaderAuthenticator",
    "JWKSKeys",
    "JWTAuthenticator",
    "NoAuthenticator",
    "RequestInfo",
    "StdioAuthenticator",
    "fingerprint",
    "hash_api_key",
]

if TYPE_CHECKING:
    from guard.identity._common import fingerprint
    from guard.identity.api_key import ApiKeyAuthenticator, hash_api_key
    from guard.identity.base import Authenticator, RequestInfo
    from guard.identity.chain import ChainAuthenticator
    from guard.identity.claims import ClaimMapping
    from guard.identity.fastmcp_token import FastMCPTokenAuthenticator
    from guard.identity.headers import HeaderAuthenticator
    from guard.identity.jwks import JWKSKeys
    from guard.identity.jwt_auth import JWTAuthenticator
    from guard.identity.local import NoAuthenticator, StdioAuthenticator


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'guard.identity' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
