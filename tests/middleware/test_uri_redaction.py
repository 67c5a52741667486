"""URIs as records and spans show them: passwords and sensitive parameters out, wherever
the URI comes from (unknown, through a template, not a URL), the rest exactly as read,
and redacted once (found in review)."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

import pytest
from fastmcp import Client, FastMCP
from mcp.shared.exceptions import MCPError
from mw_support import Recorder

from guard import GuardMiddleware, Principal
from guard.audit import AuditLog, open_store

ALICE = Principal("alice", ("user",))
ALLOW_ALL = {"name": "all", "default_effect": "allow",
             "rules": [{"name": "r", "effect": "allow"}]}  # fmt: skip


def _server() -> FastMCP[Any]:
    mcp: FastMCP[Any] = FastMCP("s")

    @mcp.resource("web://{host}/page", name="page")
    def page(host: str) -> str:
        return "ok"

    return mcp


async def _recorded(tmp_path: Path, uris: list[str]) -> tuple[list[str], str]:
    mcp = _server()
    recorder = Recorder()
    mw = GuardMiddleware(ALLOW_ALL, principal=ALICE, audit=AuditLog(tmp_path / "a"),
                         telemetry=recorder)  # fmt: skip
    mcp.add_middleware(mw)
    async with Client(mcp) as client:
        for uri in uris:
            # the raw session: a hostile caller does not validate its own URI; unknown
            # resources are refused
            with contextlib.suppress(MCPError):
                await client.session.read_resource(uri)
    mw.close()
    with open_store(tmp_path / "a") as db:
        rows = db.execute(
            "SELECT resource_uri FROM decisions WHERE method = 'resources/read' ORDER BY ts"
        ).fetchall()
    shown = repr([e.request.resource for e in recorder.events])
    return [r[0] for r in rows], shown


async def _one_read(tmp_path: Path, mcp: FastMCP[Any], uri: str) -> tuple[str, str, str | None]:
    """Read `uri` through a guard on `mcp`: its recorded URI and args, and the traced URI."""
    recorder = Recorder()
    mw = GuardMiddleware(ALLOW_ALL, principal=ALICE, audit=AuditLog(tmp_path / "a"),
                         telemetry=recorder)  # fmt: skip
    mcp.add_middleware(mw)
    async with Client(mcp) as client:
        await client.session.read_resource(uri)
    mw.close()
    with open_store(tmp_path / "a") as db:
        [(recorded, args)] = db.execute(
            "SELECT resource_uri, args FROM decisions WHERE method = 'resources/read'"
        ).fetchall()
    [event] = [e for e in recorder.events if e.request.method == "resources/read"]
    return recorded, args, event.request.resource.uri


@pytest.mark.parametrize(
    "uri",
    [
        "http://admin:hunter2pass@[::1/x",  # no URL for urlsplit (bad IPv6 host)
        "web://admin:hunter2pass@intranet/page",  # read through a template: found
    ],
)
async def test_uri_passwords_are_neither_recorded_nor_traced(tmp_path: Path, uri: str) -> None:
    rows, shown = await _recorded(tmp_path, [uri])
    assert "hunter2pass" not in shown and "hunter2pass" not in str(rows), (rows, shown)
    assert "<redacted:path>@" in str(rows)


async def test_a_redacted_uri_keeps_everything_else_as_read(tmp_path: Path) -> None:
    # an empty authority (`config:///app`) stays: the URI is not rebuilt, only edited
    rows, _ = await _recorded(tmp_path, ["config:///app?token=abc123"])
    assert rows == ["config:///app?token=<redacted:path>"], rows


async def test_record_and_span_show_the_same_uri_for_a_short_redacted_value(
    tmp_path: Path,
) -> None:
    # The middleware shows the redacted URI (`_shown`) and AuditLog.append redacts what
    # it is given again: the second pass must not touch the markers of the first.
    mcp: FastMCP[Any] = FastMCP("v")

    @mcp.resource("vault://{token}/data", name="vault")
    def vault(token: str) -> str:
        return "ok"

    recorded, _, traced = await _one_read(tmp_path, mcp, "vault://e/data")
    assert traced == "vault://<redacted:path>/data"
    assert recorded == traced, recorded


@pytest.mark.parametrize("uri", ["vault://hunter2 pw/sub/data", "vault://hunter2/sub%20dir/data",
                                 "vault://%E2%82%ACuro-hunter2/ab/data"])  # fmt: skip
async def test_a_redacted_wildcard_parameter_leaves_the_recorded_uri(
    tmp_path: Path, uri: str
) -> None:
    # Found in review: a `{name*}` parameter spans segments, and FastMCP encodes it with
    # its `/` kept (`hunter2%20pw/sub`): neither the value as sent nor fully encoded
    # (`%2F`) is that text, so a redacted value holding `/` and a character to encode
    # was recorded and traced in the URI while its argument said `<redacted:path>`.
    mcp: FastMCP[Any] = FastMCP("v")

    @mcp.resource("vault://{secret*}/data", name="vault")
    def vault(secret: str) -> str:
        return "ok"

    recorded, args, traced = await _one_read(tmp_path, mcp, uri)
    assert "hunter2" not in recorded and "hunter2" not in str(args), (recorded, args)
    assert recorded == traced == "vault://<redacted:path>/data"
