"""A server whose tool `scope` answers, from inside a real request, the guard's visibility
scope and transport next to FastMCP's own: `test_visibility_scope.py` runs it over stdio,
and serves it in-process over HTTP, SSE and memory."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from fastmcp import Context, FastMCP

from guard._fastmcp import current_transport, visibility_scope


def build() -> FastMCP:
    mcp = FastMCP("scope")

    @mcp.tool
    def scope(ctx: Context) -> str:
        try:
            theirs: str | None = str(ctx._session_scope_key())
        except RuntimeError:
            theirs = None
        return json.dumps(
            {
                "ours": visibility_scope(ctx),
                "theirs": theirs,
                "modern": ctx._is_modern_protocol(),
                "transport": current_transport(),
            }
        )

    return mcp


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # (tests/: servers)
    from servers import serve

    serve(build())
