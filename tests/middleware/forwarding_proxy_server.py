"""A guarded proxy (API keys) in front of the HTTP backend named by `BACKEND_URL`."""

from __future__ import annotations

import os

from fastmcp.client.transports import StreamableHttpTransport
from fastmcp.server import create_proxy
from forwarding_backend import PROFILES_ONLY
from servers import serve

from guard import GuardMiddleware
from guard.identity import ApiKeyAuthenticator

proxy = create_proxy(StreamableHttpTransport(os.environ["BACKEND_URL"]), name="proxy")
proxy.add_middleware(
    GuardMiddleware(
        PROFILES_ONLY,
        authenticator=ApiKeyAuthenticator({"user-key-123": {"user_id": "u", "roles": ["user"]}}),
        audit=None,
        telemetry=False,
    )
)

if __name__ == "__main__":
    serve(proxy)
