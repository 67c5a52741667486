"""What `request.context` holds on each transport, as a condition reads it (README,
"Fields"): `transport` names it (`http`, `sse`, `stdio`), `server` the server, and
`session_id` is there only where the transport has a session."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastmcp import Client
from fastmcp.client.transports import SSETransport, StdioTransport, StreamableHttpTransport
from fastmcp.exceptions import ToolError
from servers import running_server, stdio_command

SCRIPT = Path(__file__).with_name("guarded_server.py")
USER = {"X-API-Key": "user-key-123"}

# echo for a caller on transport TRANSPORT, with the session FastMCP's client has there
POLICY = """
name: context
default_effect: deny
rules:
  - name: echo_here
    effect: allow
    tools: {names: [echo]}
    conditions:
      - {field: request.context.transport, operator: equals, value: TRANSPORT}
      - {field: request.context.server, operator: equals, value: transport-test}
      - {field: request.context.session_id, operator: SESSION}
"""


def _policy(tmp_path: Path, transport: str, session: str) -> dict[str, str]:
    path = tmp_path / f"{transport}-{session}.yaml"
    path.write_text(POLICY.replace("TRANSPORT", transport).replace("SESSION", session))
    return {"GUARD_POLICY": str(path)}


async def _echoes(client: Client) -> bool:  # type: ignore[type-arg]
    async with client:
        try:
            await client.call_tool("echo", {"text": "x"})
        except ToolError:
            return False
        return True


# fastmcp's Client speaks 2026-07-28 over streamable HTTP (no session); SSE has one;
# stdio's session id is FastMCP's, which a 2026-07-28 client does not negotiate either
@pytest.mark.parametrize(
    ("transport", "has_session"), [("http", False), ("sse", True), ("stdio", False)]
)
async def test_conditions_read_the_transport_server_and_session(
    transport: str, has_session: bool, tmp_path: Path
) -> None:
    for actual in ("http", "sse", "stdio"):
        for session in ("exists", "not_exists"):
            env = _policy(tmp_path, actual, session)
            expected = actual == transport and (session == "exists") == has_session
            if transport == "stdio":
                command, args, full_env = stdio_command(SCRIPT, env=env)
                client = Client(StdioTransport(command, args, env=full_env))
                assert await _echoes(client) is expected, (actual, session)
                continue
            with running_server(SCRIPT, transport=transport, cwd=tmp_path, env=env) as srv:
                if transport == "sse":
                    client = Client(SSETransport(srv.url, headers=USER))
                else:
                    client = Client(StreamableHttpTransport(srv.url, headers=USER))
                assert await _echoes(client) is expected, (actual, session)
