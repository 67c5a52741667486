"""The MCP Guard demo: a guarded server, real traffic, and what it leaves behind.

1. starts `examples/ops_server.py` (a guarded weather server over streamable HTTP on
   127.0.0.1, API keys in `X-API-Key`, decision records in a store, `/metrics`);
2. sends traffic as an admin, a user, a caller with a wrong key and one with no key;
3. shows the Prometheus metrics the server exposes;
4. stops the server (SIGTERM flushes the audit writer) and reads the decision records back,
   verifies their hash chain, and replays nothing: the records are the evidence.

Run: `python examples/demo.py [--out demo-out]`
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from fastmcp import Client
from fastmcp.exceptions import ToolError

HERE = Path(__file__).resolve().parent
SERVER = HERE / "ops_server.py"

CALLERS = {  # who: (X-API-Key header or None, [(tool, args), ...])
    "ada (admin)": (
        "admin-key",
        [("get_weather", {"city": "Oslo"}), ("delete_city", {"city": "Oslo"})],
    ),
    "ursula (user)": (
        "user-key",
        [("get_weather", {"city": "Lisbon"}), ("delete_city", {"city": "Lisbon"})],
    ),
    "mallory (wrong key)": ("not-a-key", [("get_weather", {"city": "Oslo"})]),
    "anonymous (no key)": (None, [("list_cities", {})]),
}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_ready(url: str, proc: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server exited early with code {proc.returncode}")
        try:
            urllib.request.urlopen(url, timeout=1).read()
            return
        except OSError:
            time.sleep(0.2)
    raise SystemExit("server did not become ready")


async def _traffic(url: str) -> list[tuple[str, str, str]]:
    seen: list[tuple[str, str, str]] = []
    for who, (key, calls) in CALLERS.items():
        headers = {"X-API-Key": key} if key else {}
        async with Client({"mcpServers": {"weather": {"url": url, "headers": headers}}}) as client:
            try:
                listed = sorted(t.name for t in await client.list_tools())
            except Exception as exc:  # the guard hides what a caller may not see
                listed = [f"<{type(exc).__name__}>"]
            seen.append((who, "tools/list", ", ".join(listed) or "(nothing)"))
            for tool, args in calls:
                try:
                    result = await client.call_tool(tool, args)
                    outcome = f"allowed: {result.data!r}"
                except ToolError as exc:
                    outcome = f"denied: {exc}"
                seen.append((who, f"tools/call {tool}", outcome))
    return seen


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="demo-out", help="directory for the decision store")
    opts = parser.parse_args()
    out = Path(opts.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    store = out / "audit.duckdb"
    port = _free_port()
    env = dict(os.environ, MCP_GUARD_AUDIT=str(store), FASTMCP_SHOW_SERVER_BANNER="false")
    # The demo's callers use the default keys and read /metrics without a token: settings
    # of ops_server.py left in the shell (see its docstring) would refuse them.
    for setting in ("USER_API_KEY", "ADMIN_API_KEY", "METRICS_TOKEN"):
        env.pop(setting, None)
    env["PYTHONPATH"] = os.pathsep.join([str(HERE.parent), env.get("PYTHONPATH", "")])
    print(f"== starting a guarded server on http://127.0.0.1:{port}/mcp (records: {store})")
    proc = subprocess.Popen(
        [sys.executable, str(SERVER), "--transport", "http", "--port", str(port)], env=env
    )
    try:
        _wait_ready(f"http://127.0.0.1:{port}/metrics", proc)
        print("\n== traffic")
        for who, what, outcome in asyncio.run(_traffic(f"http://127.0.0.1:{port}/mcp")):
            print(f"  {who:22} {what:24} {outcome}")
        print("\n== metrics (GET /metrics, decisions only)")
        text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics").read().decode()
        for line in text.splitlines():
            if line.startswith(("mcpguard_decisions_total{", "mcpguard_auth_failures_total{")):
                print("  " + line)
    finally:
        proc.send_signal(signal.SIGTERM)  # the audit writer flushes on SIGTERM
        proc.wait(timeout=30)

    from guard.audit import open_store, verify

    print("\n== decision records")
    db = open_store(store)
    rows = db.sql(
        "SELECT coalesce(user_id, '-') AS who, method, resource, allowed, reason, "
        "coalesce(rule, '-') AS rule FROM decisions ORDER BY ts"
    ).fetchall()
    for who, method, resource, allowed, reason, rule in rows:
        verdict = "allow" if allowed else "deny "
        print(f"  {verdict} {who:10} {method:12} {resource or '-':14} {reason:20} {rule}")
    report = verify(store)
    print(
        f"\n== hash chain: {report.rows} stored rows (a listing is one, an outcome another) "
        f"in {report.chains} chain(s), "
        f"{'intact' if report.ok else 'BROKEN: ' + str(report.first)}"
    )
    print(f"   explore them: mcp-guard tail {store}")
    return 0 if report.ok and rows else 1


if __name__ == "__main__":
    sys.exit(main())
