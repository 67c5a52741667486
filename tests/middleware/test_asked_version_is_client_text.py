"""A proxy's component asked for a version its backend's newest is not is decided on the
version asked for: `_meta.fastmcp.version`, the caller's own text. It reached the
record's `resource_version` verbatim and unbounded (a credential sent there, 10,000
characters), where every other string the client chooses outside the arguments is
bounded and redacted."""

from __future__ import annotations

import contextlib
from pathlib import Path

from fastmcp import Client, FastMCP
from fastmcp.server import create_proxy

from guard import GuardMiddleware, Principal
from guard.audit import AuditLog, open_store

SECRET = "sk-live-VERSIONabcdefghijklmnop1234"


async def test_a_version_asked_for_is_recorded_bounded_and_secret_free(tmp_path: Path) -> None:
    backend = FastMCP("backend")

    @backend.tool(version="2.0")
    def echo(text: str) -> str:
        return text

    @backend.prompt(version="2.0")
    def greet(name: str) -> str:
        return f"hello {name}"

    proxy = create_proxy(backend)
    guard = GuardMiddleware(
        "name: p\ndefault_effect: allow\nrules: []\n",
        principal=Principal("alice", ("user",)),
        audit=AuditLog(tmp_path / "store"),
        telemetry=False,
    )
    proxy.add_middleware(guard)
    async with Client(proxy) as client:
        for version in (SECRET, "9" * 10_000, "2.0", "3.1"):
            meta = {"fastmcp": {"version": version}}
            # no such version behind the proxy but 2.0: the backend says so
            with contextlib.suppress(Exception):
                await client.call_tool("echo", {"text": "hi"}, meta=meta)
            with contextlib.suppress(Exception):
                await client.get_prompt("greet", {"name": "x"}, meta=meta)
    guard.close()
    for path in (tmp_path / "store").rglob("*"):
        if path.is_file():
            assert SECRET.encode() not in path.read_bytes(), path
    versions = [
        v
        for (v,) in open_store(tmp_path / "store")
        .sql("SELECT resource_version FROM decisions WHERE method <> 'tools/list'")
        .fetchall()
    ]
    assert len(versions) == 8 and all(len(v or "") <= 256 for v in versions), versions
    assert versions.count("3.1") == 2 and versions.count("2.0") == 2  # ordinary asks stay
