"""The three observers of one guarded server tell one story: each decision is one record,
one count in `mcpguard_decisions_total` and (a call, read, prompt or completion) one span,
all saying the same; each allowed request that ran has one outcome. Driven with a mixed,
concurrent workload over an in-memory client and real streamable HTTP, across a reload
and a shadow switch."""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from pathlib import Path
from typing import Any

from fastmcp import Client, FastMCP
from fastmcp.client.transports import StreamableHttpTransport
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client import CollectorRegistry
from servers import serving_in_thread

from guard import GuardMiddleware, Principal
from guard.audit import AuditLog, open_store
from guard.errors import AuthenticationError
from guard.identity import ApiKeyAuthenticator
from guard.telemetry import GuardTelemetry

KEY = "good-key-0123456789"
GREET = {"type": "ref/prompt", "name": "greet"}


def _policy(extra: str) -> str:
    return f"""
name: live
default_effect: deny
rules:
  - {{name: tools, effect: allow, agents: {{roles: [user]}}, tools: {{names: [echo, boom, slow]}}}}
  - {{name: pub, effect: allow, resources: {{uris: ["data://public"]}}}}
  - {{name: tpl, effect: allow, resource_templates: {{names: [users]}}}}
  - {{name: greet, effect: allow, prompts: {{names: [greet]}}}}
  - {{name: extra, effect: allow, tools: {{names: [{extra}]}}}}
"""


class _Crashing(ApiKeyAuthenticator):
    async def authenticate(self, info: Any) -> Principal:
        if info.headers.get("x-crash"):
            raise RuntimeError("authenticator bug")  # a guard error: denied, reason error
        if info.headers.get("x-refuse"):
            raise AuthenticationError("invalid_api_key", "refused")
        return await super().authenticate(info)


def _server(started: asyncio.Event) -> FastMCP[Any]:
    mcp: FastMCP[Any] = FastMCP("agree")

    @mcp.tool
    def echo(text: str) -> str:
        return text

    @mcp.tool
    def secret() -> str:
        return "s"

    @mcp.tool
    def boom() -> str:
        raise ValueError("tool failed")

    @mcp.tool
    async def slow() -> str:
        started.set()
        await asyncio.sleep(30)
        return "late"

    @mcp.resource("data://public")
    def public() -> str:
        return "pub"

    @mcp.resource("data://private")
    def private() -> str:
        return "priv"

    @mcp.resource("users://{uid}/profile", name="users")
    def users(uid: str) -> str:
        return uid

    @mcp.prompt
    def greet(name: str) -> str:
        return f"hi {name}"

    @mcp.completion
    def complete(ref: Any, argument: Any, context: Any) -> list[str]:
        return ["a"]

    return mcp


async def _quietly(awaitable: Any) -> None:
    with contextlib.suppress(Exception):  # denials and failing tools: part of the workload
        await awaitable


async def _workload(client: Client[Any]) -> None:
    await asyncio.gather(*(
        _quietly(request) for _ in range(2) for request in (
            client.call_tool("echo", {"text": "x"}), client.call_tool("secret", {}),
            client.call_tool("boom", {}), client.call_tool("nope", {}),
            client.read_resource("data://public"), client.read_resource("data://private"),
            client.read_resource("users://bob/profile"), client.read_resource("data://nope"),
            client.get_prompt("greet", {"name": "a"}), client.get_prompt("nope"),
            client.complete(GREET, {"name": "name", "value": "a"}),
            client.list_tools(), client.list_resources(), client.list_resource_templates(),
            client.list_prompts(),
        )
    ))  # fmt: skip


async def test_records_spans_and_metrics_agree_on_every_decision(
    tmp_path: Path, spans: InMemorySpanExporter, registry: CollectorRegistry
) -> None:
    started = asyncio.Event()
    mcp = _server(started)
    store = tmp_path / "audit"
    mw = GuardMiddleware(
        _policy("nothing"),
        principal=Principal("alice", ("user",)),
        authenticator=_Crashing({KEY: {"user_id": "bob", "roles": ["user"]}}),
        audit=AuditLog(store),
        telemetry=GuardTelemetry(registry=registry, list_events=True),
        shadow="name: draft\ndefault_effect: allow\nrules: []\n",
    )
    mcp.add_middleware(mw)
    async with Client(mcp) as client:
        await _workload(client)
        cancelled = asyncio.create_task(client.call_tool("slow", {}))
        await asyncio.wait_for(started.wait(), 10)
        cancelled.cancel()  # mid-flight: the tool is running
        await asyncio.gather(cancelled, return_exceptions=True)
    with serving_in_thread(mcp.http_app()) as port:
        url = f"http://127.0.0.1:{port}/mcp"
        headers = [{"X-API-Key": KEY}, {"X-API-Key": KEY, "x-refuse": "1"},
                   {"X-API-Key": KEY, "x-crash": "1"}]  # fmt: skip
        clients = [Client(StreamableHttpTransport(url, headers=h)) for h in headers]
        for c in clients:
            await c.__aenter__()
        try:
            running = asyncio.gather(*(_workload(c) for c in clients))
            mw.reload_policies(_policy("secret"))
            mw.set_shadow(None)
            await running
            mw.set_shadow("name: draft2\ndefault_effect: deny\nrules: []\n")
            await _workload(clients[0])
        finally:
            for c in clients:
                await c.__aexit__(None, None, None)
    await asyncio.sleep(0.2)  # the cancelled call's outcome
    mw.close()

    columns = ("decision_id", "method", "kind", "action", "allowed", "reason", "rule",
               "policy", "policy_hash", "trace_id", "span_id", "shadow_allowed", "status",
               "error_class")  # fmt: skip
    with open_store(store) as db:
        rows = db.sql(f"SELECT {', '.join(columns)} FROM decision_log").fetchall()
        outcome_ids = [r[0] for r in db.sql("SELECT decision_id FROM outcomes").fetchall()]
    records = [dict(zip(columns, row, strict=True)) for row in rows]
    assert len(outcome_ids) == len(set(outcome_ids))  # one outcome each, at most
    assert {r["reason"] for r in records} >= {"rule", "default", "error", "invalid_api_key"}
    assert len({r["policy_hash"] for r in records}) == 2  # before and after the reload

    # metrics: one count per record, with the same labels
    counted: Counter[tuple[Any, ...]] = Counter()
    for family in registry.collect():
        if family.name == "mcpguard_decisions":
            for s in family.samples:
                if s.name.endswith("_total") and s.value:
                    la = s.labels
                    key = (la["decision"] == "allow", la["reason"], la["kind"], la["action"],
                           la["rule"] or None, la["policy"] or None)  # fmt: skip
                    counted[key] += int(s.value)
    recorded = Counter(
        (r["allowed"], r["reason"], r["kind"], r["action"], r["rule"], r["policy"]) for r in records
    )
    assert counted == recorded

    # spans: one per decision on one component, saying what its record says
    finished = spans.get_finished_spans()
    guard_spans = [s for s in finished if s.instrumentation_scope.name == "mcp_guard"]
    by_id = {s.attributes["mcp_guard.decision_id"]: s for s in guard_spans}
    assert len(by_id) == len(guard_spans)
    single = [r for r in records if not r["method"].endswith("/list")]
    assert sorted(by_id) == sorted(r["decision_id"] for r in single)
    for r in single:
        span = by_id[r["decision_id"]]
        a = span.attributes
        shadow = a.get("mcp_guard.shadow.decision")
        assert (
            a["mcp_guard.decision"] == ("allow" if r["allowed"] else "deny"),
            a["mcp_guard.reason"], a.get("mcp_guard.rule"), a.get("mcp_guard.policy"),
            a["mcp_guard.policy_hash"], a["mcp_guard.action"], a["mcp_guard.resource.kind"],
            format(span.context.trace_id, "032x"), format(span.context.span_id, "016x"),
            None if shadow is None else shadow == "allow",
        ) == (
            True, r["reason"], r["rule"], r["policy"], r["policy_hash"], r["action"],
            r["kind"], r["trace_id"], r["span_id"], r["shadow_allowed"],
        ), r  # fmt: skip

    # outcomes: every allowed call, read, prompt and completion ran and has one; no denial has
    for r in single:
        assert (r["status"] is not None) == r["allowed"], r
    failed = Counter(r["error_class"] for r in single if r["status"] == "error")
    # `boom`, allowed twice in each of three workloads; `slow`, cancelled while it ran
    assert failed == Counter({"ValueError": 6, "CancelledError": 1})
