"""URIs as records and spans show them: passwords and sensitive parameters out, wherever
the URI comes from (unknown, through a template, not a URL), the rest exactly as read,
and redacted once (found in review)."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

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


async def test_password_of_uri_with_bad_ipv6_host_is_recorded(tmp_path: Path) -> None:
    # urlsplit raises ValueError ("Invalid IPv6 URL"); the fallback only cleans the
    # query and fragment, so `user:pass@` is kept in the record and the spans.
    rows, shown = await _recorded(tmp_path, ["http://admin:hunter2pass@[::1/x"])
    assert "hunter2pass" not in shown, shown
    assert "hunter2pass" not in str(rows), rows


async def test_uri_with_empty_authority_is_rewritten_when_a_token_is_redacted(
    tmp_path: Path,
) -> None:
    # urlunsplit drops the empty authority of a scheme it does not know: the record
    # says `config:/app` was read, not `config:///app`.
    rows, _ = await _recorded(tmp_path, ["config:///app?token=abc123"])
    assert rows == ["config:///app?token=<redacted:path>"], rows


async def test_template_read_keeps_user_password_of_its_uri(tmp_path: Path) -> None:
    # A template read is found; when no argument is redacted, Redactor.resource returns
    # it untouched and the caller's `user:pass@` (README: "become markers") is recorded.
    rows, shown = await _recorded(tmp_path, ["web://admin:hunter2pass@intranet/page"])
    assert "hunter2pass" not in shown, shown
    assert "hunter2pass" not in str(rows), rows


async def test_record_and_span_show_the_same_uri_for_a_short_redacted_value(
    tmp_path: Path,
) -> None:
    # README: "The guard's spans ... show the same URI as the record". The middleware
    # redacts the URI (`_shown`), then AuditLog.append redacts that result again,
    # replacing the value inside the markers the first pass wrote.
    mcp: FastMCP[Any] = FastMCP("v")

    @mcp.resource("vault://{token}/data", name="vault")
    def vault(token: str) -> str:
        return "ok"

    recorder = Recorder()
    mw = GuardMiddleware(ALLOW_ALL, principal=ALICE, audit=AuditLog(tmp_path / "a"),
                         telemetry=recorder)  # fmt: skip
    mcp.add_middleware(mw)
    async with Client(mcp) as client:
        await client.read_resource("vault://e/data")  # `token` is a sensitive name
    mw.close()
    with open_store(tmp_path / "a") as db:
        [(recorded,)] = db.execute(
            "SELECT resource_uri FROM decisions WHERE method = 'resources/read'"
        ).fetchall()
    [event] = [e for e in recorder.events if e.request.method == "resources/read"]
    assert event.request.resource.uri == "vault://<redacted:path>/data"
    assert recorded == event.request.resource.uri, recorded
