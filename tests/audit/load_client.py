"""Many MCP sessions over streamable HTTP with raw JSON-RPC (httpx), lighter than full
clients so that 1,000 concurrent sessions fit on a small machine.

Usage: load_client.py URL API_KEY SESSIONS CALLS  -> prints {"ok": n, "errors": [...]}
"""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Any

import httpx


async def session(client: httpx.AsyncClient, url: str, key: str, calls: int, n: int) -> int:
    headers = {"X-API-Key": key, "Accept": "application/json, text/event-stream"}

    async def rpc(body: dict[str, Any]) -> httpx.Response:
        for attempt in range(5):
            try:
                resp = await client.post(url, json=body, headers=headers)
            except (httpx.ConnectError, httpx.PoolTimeout):  # never sent: safe to retry
                if attempt == 4:
                    raise
                await asyncio.sleep(0.2 * (attempt + 1))
                continue
            resp.raise_for_status()
            return resp
        raise AssertionError("unreachable")

    init = await rpc({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {},
        "clientInfo": {"name": "load", "version": "1"}}})  # fmt: skip
    headers["mcp-session-id"] = init.headers["mcp-session-id"]
    headers["mcp-protocol-version"] = init.json()["result"]["protocolVersion"]
    await rpc({"jsonrpc": "2.0", "method": "notifications/initialized"})
    ok = 0
    for i in range(calls):
        resp = await rpc({"jsonrpc": "2.0", "id": i + 1, "method": "tools/call",
                          "params": {"name": "add", "arguments": {"a": n, "b": i}}})  # fmt: skip
        result = resp.json()["result"]
        if not result.get("isError") and result["structuredContent"]["result"] == n + i:
            ok += 1
    await client.delete(url, headers=headers)
    return ok


async def main(url: str, key: str, sessions: int, calls: int) -> dict[str, Any]:
    # Idle connections are dropped after 1 s, well before uvicorn closes them (5 s): with
    # equal timeouts a request can be sent on a connection the server is closing, which
    # fails with ReadError and cannot be retried safely (it may have been processed).
    limits = httpx.Limits(
        max_connections=sessions, max_keepalive_connections=sessions, keepalive_expiry=1.0
    )
    async with httpx.AsyncClient(limits=limits, timeout=600) as client:
        results = await asyncio.gather(
            *(session(client, url, key, calls, n) for n in range(sessions)), return_exceptions=True
        )
    errors = [repr(r) for r in results if isinstance(r, BaseException)]
    return {"ok": sum(r for r in results if isinstance(r, int)), "errors": errors[:5]}


if __name__ == "__main__":
    url, key, sessions, calls = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    print(json.dumps(asyncio.run(main(url, key, sessions, calls))))
