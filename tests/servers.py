"""Start real guarded MCP servers for tests: HTTP/SSE in a subprocess, stdio parameters.

Reusable by every layer's tests (no fixtures, no conftest magic):

```python
from servers import running_server  # tests/ is on sys.path (tests/conftest.py)

with running_server(SCRIPT, transport="http", env={"MCP_GUARD_AUDIT": str(db)}) as srv:
    async with Client({"mcpServers": {"s": {"url": srv.url, "headers": {"X-API-Key": "k"}}}}):
        ...
```

A server script builds its FastMCP server and ends with `serve(mcp)`, which reads the
transport and port this module passes on the command line.
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent

__all__ = [
    "PROTOCOL",
    "REPO",
    "ServerProcess",
    "free_port",
    "raw_request",
    "raw_tool_call",
    "rpc_headers",
    "rpc_meta",
    "running_server",
    "serve",
    "serving_in_thread",
    "stdio_command",
]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def serving_in_thread(app: Any) -> Iterator[int]:
    """Serve the ASGI `app` (`mcp.http_app()`) with uvicorn on 127.0.0.1 in a thread of
    this process (so a test can look at its guard, spans and metrics directly); yields the
    port once it listens, and stops the server when the block ends."""
    import threading

    import uvicorn

    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "server did not start"
        time.sleep(0.02)
    try:
        yield port
    finally:
        server.should_exit = True
        thread.join(10)


PROTOCOL = "2026-07-28"  # the protocol era whose requests carry their own `_meta`


def rpc_meta(version: str = PROTOCOL) -> dict[str, Any]:
    """The `_meta` a client of protocol `version` (2026-07-28 on) puts in each request."""
    return {
        "io.modelcontextprotocol/protocolVersion": version,
        "io.modelcontextprotocol/clientCapabilities": {},
    }


def rpc_headers(method: str, name: str | None = None, version: str = PROTOCOL) -> dict[str, str]:
    """The HTTP headers of a streamable HTTP request for `method` (naming `name`)."""
    headers = {
        "accept": "application/json, text/event-stream", "content-type": "application/json",
        "mcp-protocol-version": version, "mcp-method": method,
    }  # fmt: skip
    if name is not None:
        headers["mcp-name"] = name
    return headers


def raw_request(
    url: str,
    method: str,
    params: Mapping[str, Any],
    *,
    name: str | None = None,
    headers: Mapping[str, str] | None = None,
    request_id: Any = 1,
    version: str = PROTOCOL,
) -> Any:
    """POST one JSON-RPC request to a streamable HTTP `url`, as a client of protocol
    `version` would (`_meta` added from 2026-07-28 on), with extra `headers`: what
    fastmcp's `Client` would not let a test send. Returns the `httpx.Response`."""
    import httpx

    params = {**params, "_meta": rpc_meta(version)} if version == PROTOCOL else dict(params)
    body = {"jsonrpc": "2.0", "id": request_id, "method": method, "params": params}
    sent = {**rpc_headers(method, name, version), **(headers or {})}
    return httpx.post(url, json=body, headers=sent, timeout=20)


def raw_tool_call(
    url: str,
    name: str,
    headers: Mapping[str, str] | None = None,
    *,
    request_id: Any = 1,
    version: str = PROTOCOL,
) -> Any:
    """`raw_request` of a `tools/call` of `name` (argument `text="y"`), with the ids the
    client chooses or credentials in `headers`."""
    params = {"name": name, "arguments": {"text": "y"}}
    return raw_request(
        url, "tools/call", params, name=name, headers=headers, request_id=request_id,
        version=version,
    )  # fmt: skip


def _env(extra: Mapping[str, str] | None) -> dict[str, str]:
    env = dict(os.environ)
    # The script imports `guard` from this checkout and `servers` (this module) for `serve`.
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(REPO), str(REPO / "tests"), env.get("PYTHONPATH", "")) if p
    )
    env.setdefault("FASTMCP_SHOW_SERVER_BANNER", "false")
    env.setdefault("PYTHONUNBUFFERED", "1")
    env.update(extra or {})
    return env


@dataclass
class ServerProcess:
    """A running server subprocess.

    Attributes:
        process: the subprocess.
        port: the TCP port it listens on (0 for stdio).
        url: the MCP endpoint (`/mcp` for streamable HTTP, `/sse` for SSE).
        log: file receiving the server's stdout and stderr.
    """

    process: subprocess.Popen[bytes]
    port: int
    url: str
    log: Path

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def stop(self, timeout: float = 10.0) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout)


def _wait_listening(proc: subprocess.Popen[bytes], port: int, log: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(
                f"server exited with {proc.returncode} before listening:\n"
                + log.read_text(errors="replace")
            )
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.settimeout(0.2)
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    proc.kill()
    raise TimeoutError(f"server not listening on {port} after {timeout}s:\n" + log.read_text())


@contextmanager
def running_server(
    script: str | Path,
    *,
    transport: str = "http",
    env: Mapping[str, str] | None = None,
    args: Sequence[str] = (),
    cwd: str | Path | None = None,
    timeout: float = 60.0,
) -> Iterator[ServerProcess]:
    """Run `script` as a server on a free 127.0.0.1 port until the block ends.

    Args:
        script: a Python file ending in `serve(mcp)`.
        transport: `http` (streamable HTTP) or `sse`.
        env: extra environment variables for the server.
        args: extra command-line arguments for the script.
        cwd: working directory (default: the current one, a test's tmp dir).
        timeout: seconds to wait until the port accepts connections.
    """
    if transport not in ("http", "sse"):
        raise ValueError(f"running_server starts HTTP servers; got transport={transport!r}")
    port = free_port()
    workdir = Path(cwd) if cwd is not None else Path.cwd()
    log = workdir / f"server-{port}.log"
    cmd = [sys.executable, str(script), "--transport", transport, "--port", str(port), *args]
    with log.open("wb") as sink:
        proc = subprocess.Popen(
            cmd, stdout=sink, stderr=subprocess.STDOUT, env=_env(env), cwd=workdir
        )
    path = "/sse" if transport == "sse" else "/mcp"
    server = ServerProcess(proc, port, f"http://127.0.0.1:{port}{path}", log)
    try:
        _wait_listening(proc, port, log, timeout)
        yield server
    finally:
        server.stop()


def stdio_command(
    script: str | Path, *, env: Mapping[str, str] | None = None, args: Sequence[str] = ()
) -> tuple[str, list[str], dict[str, str]]:
    """`(command, args, env)` to launch `script` as a stdio server from a client."""
    return sys.executable, [str(script), "--transport", "stdio", *args], _env(env)


def serve(mcp: Any, argv: Sequence[str] | None = None) -> None:
    """Run `mcp` with the transport and port given on the command line (server scripts)."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--transport", default="stdio", choices=["stdio", "http", "sse"])
    parser.add_argument("--port", type=int, default=0)
    opts, _ = parser.parse_known_args(argv)
    if opts.transport == "stdio":
        mcp.run(transport="stdio", show_banner=False)
    else:
        mcp.run(
            transport=opts.transport,
            host="127.0.0.1",
            port=opts.port,
            show_banner=False,
            log_level="warning",
        )
