"""An integer argument of more digits than Python turns into text (4,300) was decided on
and let through, then broke its record in the writer thread ("could not be encoded"): an
allowed call ran with no record at all. In-process callers (an in-memory client, a
server calling its own tools) hand such values over as they are. It is now recorded as
an oversized marker, listed in `args_redacted`, so replay treats it as unknown."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastmcp import Client, FastMCP
from replay_helpers import again, recorded, redecide, rows

from guard import GuardMiddleware, Principal
from guard.audit import AuditLog
from guard.audit.redact import Redactor

POLICY = """
name: sums
default_effect: allow
rules:
  - name: no_negative_sums
    effect: deny
    conditions: [{field: tool.args.n, operator: lt, value: 0}]
"""


async def test_a_huge_integer_argument_is_recorded_as_oversized(tmp_path: Path) -> None:
    store = tmp_path / "s"
    mcp: FastMCP[Any] = FastMCP("sums")

    @mcp.tool
    def add(n: int, m: int = 0) -> str:
        return "added"

    log = AuditLog(store)
    mw = GuardMiddleware(POLICY, principal=Principal("fay"), audit=log, telemetry=False)
    mcp.add_middleware(mw)
    async with Client(mcp) as client:
        assert (await client.call_tool("add", {"n": 10**5000, "m": 2**70})).data == "added"
    mw.close()
    assert log.stats()["append_errors"] == 0
    [row] = rows(store, "method = 'tools/call'")
    assert row["args_redacted"] == ["n"]
    assert '"m":1180591620717411303424' in row["args"]  # big, but still a number
    assert "<redacted:oversized" in row["args"]
    assert recorded(row)[:2] == (True, "default")
    # replayed as unknown: the deny rule on it applies (fail closed), as for any redaction
    assert again(redecide(store, row))[:2] == (False, "rule")


def test_huge_integers_anywhere_are_redacted() -> None:
    clean, paths = Redactor().redact({"a": [1, -(10**5000)], "b": {"c": 10**4000}, "d": 7})
    assert paths == ("a.1", "b.c")
    assert clean is not None and clean["d"] == 7 and clean["a"][0] == 1
