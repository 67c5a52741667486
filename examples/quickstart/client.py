"""Talk to the quickstart server as a user and as an admin.

Run after `python examples/quickstart/server.py`:
`python examples/quickstart/client.py [http://127.0.0.1:8000/mcp]`.
"""

from __future__ import annotations

import asyncio
import sys

from fastmcp import Client
from fastmcp.exceptions import ToolError


async def session(url: str, key: str) -> None:
    client = Client({"mcpServers": {"quickstart": {"url": url, "headers": {"X-API-Key": key}}}})
    async with client:
        tools = [t.name for t in await client.list_tools()]
        print(f"[{key}] sees tools {tools}")
        print(f"[{key}] add(2, 3) = {(await client.call_tool('add', {'a': 2, 'b': 3})).data}")
        for name, args in (("divide", {"a": 5000, "b": 2}), ("reset_counters", {})):
            try:
                result = await client.call_tool(name, args)
                print(f"[{key}] {name} -> {result.data}")
            except ToolError as denied:
                print(f"[{key}] {name} refused: {denied}")


async def main(url: str) -> None:
    await session(url, "user-key-123")
    await session(url, "admin-key-456")


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1] if len(sys.argv) > 1 else "http://127.0.0.1:8000/mcp"))
