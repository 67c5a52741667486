"""The body of a decision log record (`deny call tool delete_city`) is a line of text that
log stores (Loki, a SIEM, a collector's file exporter) show and split as such. The name of
a tool or prompt the server does not have is the caller's text, and reached the body as
sent: a newline forged a second decision line, an ANSI escape sequence rewrote the
terminal of whoever tailed the logs (`logcli`), a right-to-left override reordered the
line (found in review). The body now shows such a name escaped, as the span's status
description does; the attributes keep the name as recorded."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from fastmcp import Client
from fastmcp.exceptions import ToolError
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter, SimpleLogRecordProcessor
from prometheus_client import CollectorRegistry

from guard import GuardMiddleware, Principal
from guard.telemetry import GuardTelemetry

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "middleware"))
from mw_support import POLICY, demo_server

ALICE = Principal("alice", roles=("user",), auth_method="test")
FORGED = "x\nallow call tool delete_everything"  # a whole second line
HOSTILE = [FORGED, "\x1b]0;pwned\x07\x1b[2J", "evil\u202egnp.exe", "nul\x00", "tab\there"]


async def test_a_hostile_tool_name_stays_on_one_printable_line() -> None:
    exporter = InMemoryLogRecordExporter()
    provider = LoggerProvider()
    provider.add_log_record_processor(SimpleLogRecordProcessor(exporter))
    telemetry = GuardTelemetry(registry=CollectorRegistry(), decision_logs=provider)
    mcp = demo_server()
    mw = GuardMiddleware(POLICY, principal=ALICE, audit=None, telemetry=telemetry)
    mcp.add_middleware(mw)
    async with Client(mcp) as client:
        for name in HOSTILE:
            with pytest.raises(ToolError):
                await client.call_tool(name, {})
        await client.call_tool("echo", {"text": "x"})
    mw.close()
    records = [r.log_record for r in exporter.get_finished_logs()]
    calls = [r for r in records if str(r.body).split(" ")[1] == "call"]
    bodies = [str(r.body) for r in calls]
    assert len(bodies) == len(HOSTILE) + 1, bodies
    for body in bodies:
        assert body.isprintable(), body
    assert bodies[0] == r"deny call tool x\nallow call tool delete_everything"
    assert bodies[-1] == "allow call tool echo"  # a printable name is shown as it is
    # the structured attribute keeps the name as recorded
    assert dict(calls[0].attributes or {})["gen_ai.tool.name"] == FORGED
    provider.shutdown()
