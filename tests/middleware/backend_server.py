"""An unguarded backend (a stand-in for mcp-server-sqlite) that the proxy test guards."""

from __future__ import annotations

from fastmcp import FastMCP

mcp = FastMCP("backend")


@mcp.tool
def read_query(query: str) -> str:
    """Run a SELECT."""
    return f"rows for {query}"


@mcp.tool
def write_query(query: str) -> str:
    """Run an INSERT/UPDATE/DELETE."""
    return f"changed by {query}"


if __name__ == "__main__":
    mcp.run(show_banner=False)  # stdio: started by the proxy, not by the tests
