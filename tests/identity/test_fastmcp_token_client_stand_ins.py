"""FastMCP's `JWTVerifier` fills a token's `client_id` with its subject when the token names
no OAuth client (no `client_id`, no `azp`), and with `"unknown"` when it names no subject
either. Neither is a client: over real HTTP, the guard's principal must not take the
user's own id for an agent, nor make every such subject-less token the one user
`unknown`; it reads the same token as `JWTAuthenticator` does."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastmcp import Client, FastMCP
from fastmcp.client.transports import StreamableHttpTransport
from fastmcp.exceptions import ToolError
from fastmcp.server.auth.providers.jwt import JWTVerifier
from identity_kit import KeyPair, mint
from servers import serving_in_thread

from guard import GuardMiddleware
from guard.events import DecisionEvent
from guard.identity import FastMCPTokenAuthenticator
from guard.telemetry import NoTelemetry, SpanHandle

POLICY = """
name: p
default_effect: deny
rules:
  - name: users
    effect: allow
    agents: {roles: [user]}
    actions: ["*"]
"""


class Decisions(NoTelemetry):
    def __init__(self) -> None:
        self.events: list[DecisionEvent] = []

    def end_decision(self, handle: SpanHandle, event: DecisionEvent) -> None:
        self.events.append(event)


@pytest.fixture
def served(rsa_key: KeyPair) -> Iterator[tuple[str, Decisions]]:
    verifier = JWTVerifier(
        public_key=rsa_key.public_pem.decode(), issuer="https://idp.test", audience="mcp",
        algorithm="RS256",
    )  # fmt: skip
    mcp: FastMCP[Any] = FastMCP("srv", auth=verifier)

    @mcp.tool
    def echo(text: str) -> str:
        return text

    seen = Decisions()
    authenticator = FastMCPTokenAuthenticator(roles_claim=())
    mcp.add_middleware(GuardMiddleware(POLICY, authenticator=authenticator, audit=None,
                                       telemetry=seen))  # fmt: skip
    with serving_in_thread(mcp.http_app()) as port:
        yield f"http://127.0.0.1:{port}/mcp", seen


async def _call(url: str, key: KeyPair, **claims: Any) -> str:
    payload = {"iss": "https://idp.test", "aud": "mcp", "scope": "user", **claims}
    token = mint({k: v for k, v in payload.items() if v is not None}, key.private, "RS256")
    async with Client(StreamableHttpTransport(url, auth=token)) as client:
        try:
            return str((await client.call_tool("echo", {"text": "hi"})).data)
        except ToolError as exc:
            return f"denied: {exc}"


async def test_a_token_naming_no_client_has_no_agent(
    served: tuple[str, Decisions], rsa_key: KeyPair
) -> None:
    url, seen = served
    assert await _call(url, rsa_key, sub="alice") == "hi"
    assert await _call(url, rsa_key, sub="bob", azp="cursor") == "hi"
    calls = [e.request.principal for e in seen.events if e.method == "tools/call"]
    assert [(p.user_id, p.agent_id) for p in calls] == [("alice", None), ("bob", "cursor")]


async def test_a_token_naming_no_one_is_refused(
    served: tuple[str, Decisions], rsa_key: KeyPair
) -> None:
    url, seen = served
    assert (await _call(url, rsa_key)).startswith("denied")
    (call,) = [e for e in seen.events if e.method == "tools/call"]
    assert call.decision.reason == "missing_claim"
    assert call.request.principal.user_id != "unknown"
