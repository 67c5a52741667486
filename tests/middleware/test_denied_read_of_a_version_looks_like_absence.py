"""A read that asks for a version: FastMCP says a resource it has not got in that version
is `Unknown resource: 'uri' version VersionSpec(...)`. The wire handler rewords it, but a
middleware outside the guard (FastMCP's `ErrorHandlingMiddleware`) and a caller reading
in process see that text: a denial must say the same, or a caller that names a version
tells a hidden resource from a missing one."""

from __future__ import annotations

from typing import Any

import pytest
from fastmcp import Client, FastMCP
from fastmcp.server.middleware.error_handling import ErrorHandlingMiddleware
from fastmcp.utilities.versions import VersionSpec
from mcp.shared.exceptions import MCPError
from mw_support import demo_server

from guard import GuardMiddleware, Principal

ALICE = Principal("alice", roles=("user",))

# default allow: a URI no component answers is passed on, and FastMCP answers it
HIDE_SECRET = """
name: p
default_effect: allow
rules:
  - {name: no_secret, effect: deny, resources: {uris: ["data://secret"]}}
"""


def _server(*, error_handling: bool) -> FastMCP[Any]:
    mcp = demo_server()
    if error_handling:  # outside the guard: it sees the guard's text
        mcp.add_middleware(ErrorHandlingMiddleware())
    mcp.add_middleware(GuardMiddleware(HIDE_SECRET, principal=ALICE, audit=None,
                                       telemetry=False))  # fmt: skip
    return mcp


async def _read_error(client: Client[Any], uri: str, version: str | None) -> tuple[int, str]:
    with pytest.raises(MCPError) as caught:
        await client.read_resource(uri, version=version)
    return caught.value.error.code, caught.value.error.message.replace(uri, "URI")


@pytest.mark.parametrize("version", [None, "1"])
@pytest.mark.parametrize("error_handling", [False, True])
async def test_a_denied_read_answers_like_a_missing_one_whatever_version_is_asked(
    version: str | None, error_handling: bool
) -> None:
    async with Client(_server(error_handling=error_handling)) as client:
        denied = await _read_error(client, "data://secret", version)
        missing = await _read_error(client, "data://nothing", version)
    assert denied == missing


@pytest.mark.parametrize("version", [None, VersionSpec(eq="1"), VersionSpec(gte="1", lt="2")])
async def test_a_denied_read_in_process_answers_like_a_missing_one(
    version: VersionSpec | None,
) -> None:
    mcp = _server(error_handling=False)
    answers = []
    for uri in ("data://secret", "data://nothing"):
        with pytest.raises(Exception) as caught:
            await mcp.read_resource(uri, version=version)
        answers.append(str(caught.value).replace(uri, "URI"))
    assert answers[0] == answers[1]
