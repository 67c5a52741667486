"""On a handshake-era connection a proxy mirrors that era to its backend, and its client
sends a templated read's URI as pydantic's `AnyUrl` writes it (`read_resource_mcp`):
dot segments removed, `%2e%2e` too. `files://root/public/../private/x` matched the
template the policy allows and was decided so, while the backend was sent
`files://root/private/x`, its concrete resource the policy denies (a direct read of that
URI is refused). The read must be decided on what the backend is sent, too."""

from __future__ import annotations

from typing import Any

import pytest
from fastmcp import Client, FastMCP
from fastmcp.server import create_proxy
from mcp.shared.exceptions import MCPError
from mw_support import Recorder

from guard import GuardMiddleware, Principal

ALICE = Principal("alice", roles=("user",), auth_method="test")

POLICY = """
name: p
default_effect: deny
rules:
  - name: no_private
    effect: deny
    resources: {patterns: ["files://root/private/*"]}
  - name: files
    effect: allow
    resource_templates: {names: [files]}
    actions: [list, read]
"""


def _backend() -> FastMCP[Any]:
    mcp: FastMCP[Any] = FastMCP("backend")

    @mcp.resource("files://root/{path*}", name="files")
    def files(path: str) -> str:
        return f"file {path}"

    @mcp.resource("files://root/private/x", name="private_x")
    def private_x() -> str:
        return "PRIVATE X"

    return mcp


@pytest.mark.parametrize(
    "uri", ["files://root/public/../private/x", "files://root/public/%2e%2E/private/x"]
)
@pytest.mark.parametrize("mode", ["legacy", "auto"])
async def test_a_dot_segment_does_not_reach_a_denied_resource_behind_a_proxy(
    recorder: Recorder, uri: str, mode: str
) -> None:
    proxy = create_proxy(_backend(), name="proxy")
    proxy.add_middleware(GuardMiddleware(POLICY, principal=ALICE, audit=None, telemetry=recorder))
    async with Client(proxy, mode=mode) as client:
        assert (await client.read_resource("files://root/public/a"))[0].text == "file public/a"
        with pytest.raises(MCPError, match="not found"):
            await client.session.read_resource("files://root/private/x")
        # the raw session: `Client.read_resource` would normalize the URI before sending
        try:
            result = await client.session.read_resource(uri)
        except MCPError as refused:
            assert "not found" in refused.error.message
        else:
            # found in review (legacy): "PRIVATE X", the denied resource's content
            assert result.contents[0].text != "PRIVATE X"  # type: ignore[union-attr]
    # decided on the URI a handshake-era backend is sent, whatever the era: an auto
    # (modern) backend's template function gets `public/../private/x` as sent
    last = [e for e in recorder.events if e.method == "resources/read"][-1]
    assert (last.decision.allowed, last.request.resource.uri) == (False, "files://root/private/x")
