"""An argument holding a lone surrogate (valid JSON: `"\\ud800"`, and what the tool gets)
was stored with `?` in its place, indistinguishable from a real question mark, and not
listed in `args_redacted`: replay decided on a value the live decision never saw, and
`args_sha256` was the digest of the original text, not of the arguments as recorded
(found in review). It is now redacted: listed, marked, replayed as unknown."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from fastmcp import Client, FastMCP
from replay_helpers import again, recorded, redecide, rows

from guard import GuardMiddleware, Principal
from guard.audit import AuditLog

POLICY = """
name: queries
default_effect: allow
rules:
  - name: no_wildcard_queries
    effect: deny
    conditions: [{field: tool.args.q, operator: contains, value: "?"}]
"""


async def test_a_lone_surrogate_is_not_recorded_as_a_question_mark(tmp_path: Path) -> None:
    store = tmp_path / "s"
    mcp: FastMCP[Any] = FastMCP("surrogates")

    @mcp.tool
    def search(q: str) -> str:
        return repr(q)

    mw = GuardMiddleware(POLICY, principal=Principal("alice", ("user",)), audit=AuditLog(store),
                         telemetry=False)  # fmt: skip
    mcp.add_middleware(mw)
    async with Client(mcp) as client:
        result = await client.call_tool("search", {"q": "a\ud800b"})
    assert result.data == "'a\\ud800b'"  # the tool saw the surrogate, and ran: allowed
    mw.close()
    [row] = rows(store, "method = 'tools/call'")
    assert (row["allowed"], row["rule"]) == (True, None)
    assert row["args_redacted"] == ["q"] and "a?b" not in row["args"]
    assert "a\\\\ud800b" in row["args"]  # shown escaped inside the marker
    # replayed as unknown, as every redacted input: the deny rule applies (fail closed)
    assert again(redecide(store, row))[:3] == (False, "rule", "no_wildcard_queries")
    assert recorded(row)[3] == again(redecide(store, row))[3]
    # README: args_sha256 is the digest of the arguments as recorded
    assert row["args_sha256"] == hashlib.sha256(row["args"].encode()).hexdigest(), row["args"]
