"""MCP Guard: authorization, audit and governance for MCP servers built on FastMCP.

Importing `guard` is cheap: the public names below load their modules on first use, so
FastMCP, DuckDB and OpenTelemetry are imported only by the parts that need them.

```python
from guard import GuardMiddleware, load_policies

mcp.add_middleware(GuardMiddleware(policies="policies.yaml"))
```
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# public name -> module that defines it
_EXPORTS: dict[str, str] = {
    "GuardMiddleware": "guard.middleware",
    "create_jwt_middleware": "guard.factories",
    "create_api_key_middleware": "guard.factories",
    "create_header_middleware": "guard.factories",
    "create_no_auth_middleware": "guard.factories",
    "load_policies": "guard.policy.loader",
    "PolicySet": "guard.policy.policyset",
    "Decision": "guard.policy.model",
    "AccessRequest": "guard.policy.model",
    "Principal": "guard.policy.model",
    "Resource": "guard.policy.model",
    "PolicyError": "guard.errors",
    "GuardError": "guard.errors",
    "AuthenticationError": "guard.errors",
    # mcp-auth-guard 1.0.0's top-level names, for code migrating with imports changed
    "PolicyEngine": "guard.policy.compat",
    "PolicyBuilder": "guard.policy.builder",
    "PolicyConfig": "guard.schemas",
    "AuthConfig": "guard.schemas",
    "AuthMethod": "guard.schemas",
    "ToolResource": "guard.schemas",
}

__all__ = [
    "AccessRequest",
    "AuthConfig",
    "AuthMethod",
    "AuthenticationError",
    "Decision",
    "GuardError",
    "GuardMiddleware",
    "PolicyBuilder",
    "PolicyConfig",
    "PolicyEngine",
    "PolicyError",
    "PolicySet",
    "Principal",
    "Resource",
    "ToolResource",
    "__version__",
    "create_api_key_middleware",
    "create_header_middleware",
    "create_jwt_middleware",
    "create_no_auth_middleware",
    "load_policies",
]

if TYPE_CHECKING:
    from guard.errors import AuthenticationError, GuardError, PolicyError
    from guard.factories import (
        create_api_key_middleware,
        create_header_middleware,
        create_jwt_middleware,
        create_no_auth_middleware,
    )
    from guard.middleware import GuardMiddleware
    from guard.policy.builder import PolicyBuilder
    from guard.policy.compat import PolicyEngine
    from guard.policy.loader import load_policies
    from guard.policy.model import AccessRequest, Decision, Principal, Resource
    from guard.policy.policyset import PolicySet
    from guard.schemas import AuthConfig, AuthMethod, PolicyConfig, ToolResource


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'guard' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # cache: later lookups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
