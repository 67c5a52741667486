"""A guarded proxy (API keys) in front of the HTTP backend named by `BACKEND_URL`."""

from __future__ import annotations

import os

from fastmcp.client.transports import StreamableHttpTransport
from fastmcp.server import create_proxy
from servers import serve

from guard import GuardMiddleware
from guard.identity import ApiKeyAuthenticator

POLICY = """
name: p
default_effect: deny
rules:
  - name: user_profiles
    effect: allow
    agents: {roles: [user]}
    resource_templates: {names: [profile]}
    actions: [list, read]
"""

proxy = create_proxy(StreamableHttpTransport(os.environ["BACKEND_URL"]), name="proxy")
proxy.add_middleware(
    GuardMiddleware(
        POLICY,
        authenticator=ApiKeyAuthenticator({"user-key-123": {"user_id": "u", "roles": ["user"]}}),
        audit=None,
        telemetry=False,
    )
)

if __name__ == "__main__":
    serve(proxy)
