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


async def one_session(url: str, key: str, calls: int, n: int) -> int:
    # Each session owns its connection; none expire on the client (the server keeps them
    # 600 s). A pool shared by many sessions can close an expired connection after it was
    # handed to a request that is about to use it (httpcore 1.0 expires connections that
    # are assigned but not yet active); the request then fails with ReadError half sent,
    # and cannot be retried safely because the server may already have run it.
    limits = httpx.Limits(max_connections=1, max_keepalive_connections=1, keepalive_expiry=None)
    async with httpx.AsyncClient(limits=limits, timeout=600) as client:
        return await session(client, url, key, calls, n)


async def main(url: str, key: str, sessions: int, calls: int) -> dict[str, Any]:
    results = await asyncio.gather(
        *(one_session(url, key, calls, n) for n in range(sessions)), return_exceptions=True
    )
    errors = [repr(r) for r in results if isinstance(r, BaseException)]
    return {"ok": sum(r for r in results if isinstance(r, int)), "errors": errors[:5]}


if __name__ == "__main__":
    url, key, sessions, calls = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    print(json.dumps(asyncio.run(main(url, key, sessions, calls))))
