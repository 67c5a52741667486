"""Shadow mode in a listing: each component the draft would answer otherwise is noted on
the list span (`mcp_guard.shadow.disagreement`), as a call's span carries
`mcp_guard.shadow.decision`: live disagreement shows in traces before rollout, for
listings too. Noted whether or not `list_events` notes hidden components."""

from __future__ import annotations

from typing import Any

from fastmcp import Client, FastMCP
from opentelemetry.trace import SpanKind
from prometheus_client import CollectorRegistry

from guard import GuardMiddleware, Principal
from guard.telemetry import GuardTelemetry

LIVE = {"name": "live", "rules": [{"name": "shown", "effect": "allow",
        "tools": {"names": ["a", "b"]}, "actions": ["list"]}]}  # fmt: skip
DRAFT = {"name": "draft", "rules": [{"name": "shown", "effect": "allow",
         "tools": {"names": ["b", "c"]}, "actions": ["list"]}]}  # fmt: skip


async def test_a_listing_notes_each_component_the_draft_answers_otherwise(spans: Any) -> None:
    app = FastMCP("shadowed")
    for name in ("a", "b", "c", "d"):
        app.tool(lambda: "x", name=name)
    telemetry = GuardTelemetry(registry=CollectorRegistry())  # list_events off (default)
    guard = GuardMiddleware(
        LIVE, shadow=DRAFT, principal=Principal("bob"), telemetry=telemetry, audit=None
    )
    app.add_middleware(guard)
    async with Client(app) as client:
        for _ in range(2):  # the second listing too
            assert sorted(t.name for t in await client.list_tools()) == ["a", "b"]
    lists = [
        s for s in spans.get_finished_spans()
        if s.name == "tools/list" and s.kind == SpanKind.SERVER
    ]  # fmt: skip
    assert len(lists) == 2
    for span in lists:
        noted = [dict(e.attributes or {}) for e in span.events
                 if e.name == "mcp_guard.shadow.disagreement"]  # fmt: skip
        seen = {(n["mcp_guard.resource.name"], n["mcp_guard.decision"],
                 n["mcp_guard.shadow.decision"]) for n in noted}  # fmt: skip
        assert seen == {("a", "allow", "deny"), ("c", "deny", "allow")}
        assert all(n["mcp_guard.decision_id"] for n in noted)
        assert not [e for e in span.events if e.name == "mcp_guard.hidden"]
