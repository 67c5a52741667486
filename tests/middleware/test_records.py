"""Decisions become records in a real store: queued before the tool runs, outcome after."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
from fastmcp import Client, FastMCP
from fastmcp.exceptions import ToolError
from mw_support import POLICY, demo_server

from guard import GuardMiddleware, Principal
from guard.audit import AuditLog, open_store, verify

ALICE = Principal("alice", roles=("user",))


async def test_every_decision_and_outcome_is_recorded(tmp_path: Path) -> None:
    store = tmp_path / "audit.duckdb"
    mw = GuardMiddleware(
        POLICY,
        principal=ALICE,
        audit=store,
        telemetry=False,
        shadow=POLICY.replace("user_safe_tools", "renamed"),
    )
    mcp = demo_server()

    @mcp.tool(tags={"safe"})
    def login(user: str, password: str) -> str:
        return f"welcome {user}"

    mcp.add_middleware(mw)
    async with Client(mcp) as client:
        await client.call_tool("login", {"user": "alice", "password": "hunter2"})
        with pytest.raises(ToolError):
            await client.call_tool("fail", {})
        with pytest.raises(ToolError):
            await client.call_tool("drop_table", {"name": "t"})
        await client.list_prompts()
    mw.close()
    with open_store(store) as db:
        calls = db.sql(
            "SELECT resource, allowed, status, error_class, policy_hash, shadow_rule, args"
            " FROM decision_log WHERE method = 'tools/call' ORDER BY ts"
        ).fetchall()
        listed = db.sql("SELECT count(*) FROM decisions WHERE method = 'prompts/list'").fetchall()
        contexts = db.sql("SELECT context, session_id FROM decisions").fetchall()
        hashes = {h for (h,) in db.sql("SELECT policy_hash FROM policies").fetchall()}
    assert [(c[0], c[1], c[2], c[3]) for c in calls] == [
        ("login", True, "ok", None),
        ("fail", True, "error", "ValueError"),
        ("drop_table", False, None, None),
    ]
    assert {c[4] for c in calls} == {mw.policy_set.hash}
    assert calls[0][5] == "renamed"  # the draft's rule, next to the live one
    assert "hunter2" not in calls[0][6]
    assert listed == [(2,)]  # one record per prompt, hidden one included
    # an in-memory Client speaks 2026-07-28, which has no session: not a made-up id each
    assert {session_id for _, session_id in contexts} == {None}
    # the context conditions saw, as a JSON object replay can hand to them again
    for context, session_id in contexts:
        assert json.loads(context) == {
            "server": "demo", "session_id": session_id, "transport": "memory",
        }  # fmt: skip
    assert {mw.policy_set.hash, mw.shadow_set.hash} <= hashes  # type: ignore[union-attr]


async def test_default_store_is_in_the_working_directory(tmp_path: Path) -> None:
    mw = GuardMiddleware(POLICY, principal=ALICE, telemetry=False)
    assert isinstance(mw.audit, AuditLog)
    mcp = demo_server()
    mcp.add_middleware(mw)
    async with Client(mcp) as client:
        await client.call_tool("echo", {"text": "x"})
    mw.close()
    with open_store(tmp_path / "mcp-guard-audit.duckdb") as db:
        assert db.sql("SELECT count(*) FROM decisions").fetchall()[0][0] >= 1


async def test_durable_mode_commits_the_decision_before_the_tool_runs(tmp_path: Path) -> None:
    store = tmp_path / "audit.duckdb"
    audit = AuditLog(store, durable=True)
    mw = GuardMiddleware(POLICY, principal=ALICE, audit=audit, telemetry=False)
    mcp = demo_server()
    seen_by_tool: list[int] = []

    @mcp.tool(tags={"safe"})
    def transfer(amount: int) -> str:
        # A reader in the tool itself already finds this call's decision on disk.
        with open_store(store) as db:
            [(n,)] = db.sql(
                "SELECT count(*) FROM decisions"
                " WHERE resource = 'transfer' AND method = 'tools/call' AND allowed"
            ).fetchall()
        seen_by_tool.append(n)
        return "done"

    mcp.add_middleware(mw)
    async with Client(mcp) as client:
        for _ in range(3):
            await client.call_tool("transfer", {"amount": 5})
    mw.close()
    assert seen_by_tool == [1, 2, 3]


class SlowDisk:
    """An audit `write_hook`: while `on`, a write of decision rows takes 1 s, longer than
    the guard waits for a durable record in these tests (`slow_disk` sets 0.2 s)."""

    def __init__(self) -> None:
        self.on = True

    def __call__(self, table: str, rows: int) -> None:
        if self.on and table == "decisions":
            time.sleep(1.0)


@pytest.fixture
def slow_disk(monkeypatch: pytest.MonkeyPatch) -> SlowDisk:
    import guard._deciding as deciding_module

    monkeypatch.setattr(deciding_module, "_DURABLE_TIMEOUT_S", 0.2)
    return SlowDisk()


async def _transfer_twice(mw: GuardMiddleware, disk: SlowDisk) -> list[str]:
    """Call `transfer` on a slow disk (refused), then once the disk is back (runs)."""
    assert mw.audit is not None
    mcp = demo_server()
    ran: list[str] = []

    @mcp.tool(tags={"safe"})
    def transfer(amount: int) -> str:
        ran.append("transfer")
        return "done"

    mcp.add_middleware(mw)
    async with Client(mcp) as client:
        with pytest.raises(ToolError):
            await client.call_tool("transfer", {"amount": 5})
        disk.on = False
        mw.audit.flush()  # the slow write is over
        assert (await client.call_tool("transfer", {"amount": 6})).data == "done"
    mw.close()
    return ran


def _transfer_records(store: Path) -> list[tuple[Any, ...]]:
    with open_store(store) as db:
        return db.sql(
            "SELECT allowed, status, error_class FROM decision_log"
            " WHERE resource = 'transfer' AND method = 'tools/call' ORDER BY ts"
        ).fetchall()


async def test_a_decision_not_durable_in_time_denies_and_its_record_says_the_call_did_not_run(
    tmp_path: Path, slow_disk: SlowDisk, caplog: pytest.LogCaptureFixture
) -> None:
    """Durable mode: the decision was recorded as allowed, then the call was denied because
    that record did not reach the disk in time; the outcome row says so, and so does a log
    line (with telemetry off, the only sign an operator sees at once)."""
    store = tmp_path / "audit"
    audit = AuditLog(store, durable=True, write_hook=slow_disk)
    mw = GuardMiddleware(POLICY, principal=ALICE, audit=audit, telemetry=False)
    with caplog.at_level("WARNING", logger="guard.middleware"):
        assert await _transfer_twice(mw, slow_disk) == ["transfer"]
    assert _transfer_records(store) == [(True, "error", "UndurableDecision"), (True, "ok", None)]
    (denied,) = [r for r in caplog.records if "not on disk" in r.getMessage()]
    with open_store(store) as db:
        ((first,),) = db.sql(
            "SELECT decision_id FROM decision_log WHERE status = 'error'"
        ).fetchall()
    assert first in denied.getMessage()


async def test_a_decision_not_durable_in_time_is_counted_and_traced_as_the_denial_it_is(
    tmp_path: Path, slow_disk: SlowDisk
) -> None:
    """Found in review: the decision was observed before its durable wait, so the metrics
    and the span said "allowed" for a call refused because its record missed the disk."""
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    from opentelemetry.trace import StatusCode
    from prometheus_client import CollectorRegistry

    from guard.telemetry import GuardTelemetry

    spans = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(spans))
    registry = CollectorRegistry()
    store = tmp_path / "audit"
    audit = AuditLog(store, durable=True, write_hook=slow_disk)
    telemetry = GuardTelemetry(registry=registry, tracer_provider=provider)
    mw = GuardMiddleware(POLICY, principal=ALICE, audit=audit, telemetry=telemetry)
    assert await _transfer_twice(mw, slow_disk) == ["transfer"]
    counted = {
        (s.labels["decision"], s.labels["reason"]): s.value
        for metric in registry.collect() if metric.name == "mcpguard_decisions"
        for s in metric.samples
        if s.name == "mcpguard_decisions_total" and s.labels["action"] == "call" and s.value
    }  # fmt: skip
    assert counted == {("deny", "error"): 1.0, ("allow", "rule"): 1.0}
    assert registry.get_sample_value("mcpguard_guard_errors_total", {"where": "record"}) == 1.0
    traced = [
        (s.attributes["mcp_guard.decision"], s.attributes["mcp_guard.reason"], s.status.status_code)
        for s in spans.get_finished_spans() if s.name == "authorize transfer" and s.attributes
    ]  # fmt: skip
    assert traced == [("deny", "error", StatusCode.ERROR), ("allow", "rule", StatusCode.UNSET)]
    # the record keeps what was decided; its outcome says the call did not run
    assert _transfer_records(store) == [(True, "error", "UndurableDecision"), (True, "ok", None)]


def test_the_fields_the_middleware_fills_by_position_keep_their_order() -> None:
    """The middleware builds `AccessRequest` and `DecisionEvent` positionally (a list of 100
    tools makes 100 of each); most of their fields are text, so a reordering would pass
    the type checker and swap what the records say."""
    import dataclasses
    import inspect

    from guard import AccessRequest
    from guard.events import DecisionEvent

    assert [f.name for f in dataclasses.fields(DecisionEvent)] == [
        "decision_id", "request", "decision", "shadow", "server", "transport", "session_id",
        "request_id", "method", "trace_id", "span_id", "inputs_redacted",
    ]  # fmt: skip
    assert list(inspect.signature(AccessRequest).parameters)[:7] == [
        "principal", "resource", "action", "args", "time", "method", "context",
    ]  # fmt: skip


VAULT = """
name: p
default_effect: deny
rules:
  - name: vault
    effect: allow
    resource_templates: {names: [vault]}
    actions: [read]
"""


async def test_a_uri_keeps_no_secret_its_arguments_lose(tmp_path: Path) -> None:
    """A read through a template carries its parameters in the URI: what redaction takes
    out of the arguments leaves the recorded URI too, and a made-up URI shaped like it
    holds a credential is not recorded (found in review: both were stored as sent)."""
    from fastmcp import FastMCP
    from mcp.shared.exceptions import MCPError

    secret, other = "sk-" + "A1b2C3d4E5f6G7h8J9k0", "sk-" + "Z9y8X7w6V5u4T3s2R1q0"
    mcp: FastMCP = FastMCP("v")

    @mcp.resource("vault://{token}/data", name="vault")
    def vault(token: str) -> str:
        return "ok"

    @mcp.resource("vault://{user}/profile", name="profile")
    def profile(user: str) -> str:
        return "ok"

    mw = GuardMiddleware(VAULT, principal=ALICE, audit=AuditLog(tmp_path / "a"), telemetry=False)
    mcp.add_middleware(mw)
    async with Client(mcp) as client:
        await client.read_resource(f"vault://{secret}/data")
        with pytest.raises(MCPError):
            await client.read_resource("vault://bob/profile")  # no rule: denied
        with pytest.raises(MCPError):
            await client.read_resource(f"nothing://here?api_key={other}")
    mw.close()
    with open_store(tmp_path / "a") as db:
        rows = db.execute(
            "SELECT resource, resource_uri, args FROM decisions WHERE method = 'resources/read' "
            "ORDER BY ts"
        ).fetchall()
    stored = str(rows)
    assert secret not in stored and other not in stored
    (_, uri, args), profile_row, (name, unknown_uri, _) = rows
    assert uri == "vault://<redacted:path>/data"  # `token` is a sensitive name
    assert json.loads(args) == {"token": "<redacted:path>"}
    assert profile_row[1] == "vault://bob/profile"  # nothing redacted: as read
    assert unknown_uri == name == "nothing://here?api_key=<redacted:path>"
    for path in (tmp_path / "a").rglob("*"):  # nor in any file of the store
        if path.is_file():
            assert secret.encode() not in path.read_bytes()


def _decision_counts(registry: Any) -> dict[tuple[str, ...], float]:
    return {
        (s.labels["decision"], s.labels["reason"], s.labels["resource"], s.labels["rule"]): s.value
        for metric in registry.collect() if metric.name == "mcpguard_decisions"
        for s in metric.samples if s.name == "mcpguard_decisions_total" and s.value
    }  # fmt: skip


async def test_a_listing_repeated_is_answered_again_recorded_and_counted_as_the_first(
    tmp_path: Path,
) -> None:
    """The same caller listing the same components under the same policy set gets the
    answers of the first listing without deciding again: records (read back through the
    item set) and metrics are those of a listing decided afresh."""
    from prometheus_client import CollectorRegistry

    from guard.telemetry import GuardTelemetry

    registry = CollectorRegistry()
    mw = GuardMiddleware(POLICY, principal=Principal("bob", ("user",)), audit=tmp_path / "a",
                         telemetry=GuardTelemetry(registry=registry))  # fmt: skip
    mcp = demo_server()
    mcp.add_middleware(mw)
    async with Client(mcp) as client:
        shown = [sorted(t.name for t in await client.list_tools()) for _ in range(3)]
    assert shown == [["echo", "fail"]] * 3
    assert len(mw._answered) == 1  # the second and third were answered again
    mw.close()
    counts = _decision_counts(registry)
    assert counts == {
        ("allow", "rule", "echo", "user_safe_tools"): 3.0,
        ("allow", "rule", "fail", "user_safe_tools"): 3.0,
        ("deny", "default", "drop_table", ""): 3.0,
    }
    with open_store(tmp_path / "a") as db:
        rows = db.sql(
            "SELECT split_part(decision_id, '.', 1) AS listing, list(struct_pack(decision_id "
            ":= split_part(decision_id, '.', 2), resource, allowed, reason, rule, policy, "
            "policy_hash, matched_rules, rules_evaluated, user_id, roles, method, action, "
            "args_sha256) ORDER BY decision_id), bool_and(eval_us >= 0), count(DISTINCT "
            "request_id) FROM decisions GROUP BY listing ORDER BY listing"
        ).fetchall()
    assert len(rows) == 3 and all(r[2] and r[3] == 1 for r in rows)
    assert rows[1][1] == rows[2][1] == rows[0][1]  # the same records, component by component
    assert verify(tmp_path / "a").ok


class _Alternating:
    """An authenticator whose callers take turns: bob as a user, then as an admin, ..."""

    def __init__(self) -> None:
        self.turn = 0

    async def authenticate(self, info: Any) -> Principal:
        self.turn += 1
        if self.turn % 2:
            return Principal("bob", ("user",), auth_method="custom")
        return Principal("bob", ("admin",), auth_method="custom")


async def test_answers_given_again_follow_the_caller_the_components_and_the_policy() -> None:
    mw = GuardMiddleware(POLICY, authenticator=_Alternating(), audit=None, telemetry=False)
    mcp = demo_server()
    mcp.add_middleware(mw)
    async with Client(mcp) as client:

        async def listed() -> list[str]:
            return sorted(t.name for t in await client.list_tools())

        user, admin = ["echo", "fail"], ["drop_table", "echo", "fail"]
        assert [await listed() for _ in range(4)] == [user, admin, user, admin]
        assert len(mw._answered) == 2  # one per kind of caller

        @mcp.tool(tags={"safe"})
        def shout(text: str) -> str:
            return text.upper()

        assert [await listed() for _ in range(2)] == [
            [*user, "shout"], ["drop_table", "echo", "fail", "shout"]
        ]  # fmt: skip
        mw.reload_policies(POLICY.replace("tools: {tags: [safe]}", "tools: {names: [shout]}"))
        assert [await listed() for _ in range(2)] == [["shout"], [*admin, "shout"]]


async def test_a_listing_decided_by_a_condition_is_decided_every_time() -> None:
    """An answer a condition gave (here on the request's context) may differ next time:
    such a listing is never given again."""
    policy = POLICY.replace(
        "    tools: {tags: [safe]}\n",
        "    tools: {tags: [safe]}\n    conditions:\n"
        "      - {field: request.context.transport, operator: equals, value: memory}\n",
    )
    mw = GuardMiddleware(policy, principal=Principal("bob", ("user",)), audit=None)
    mcp = demo_server()
    mcp.add_middleware(mw)
    async with Client(mcp) as client:
        for _ in range(2):
            assert sorted(t.name for t in await client.list_tools()) == ["echo", "fail"]
    assert mw._answered == {}


async def test_a_telemetry_that_observes_decisions_its_own_way_sees_every_listing() -> None:
    """A `GuardTelemetry` subclass that does more with each decision (`end_decision`: the
    protocol calls it for each component of a listing) is told of every listing's
    components, not only the first's: its listings are decided afresh (found in review:
    the repeats skipped it)."""
    from prometheus_client import CollectorRegistry

    from guard.telemetry import GuardTelemetry

    class Forwarding(GuardTelemetry):
        def __init__(self) -> None:
            super().__init__(registry=CollectorRegistry())
            self.seen: list[str] = []

        def end_decision(self, handle: Any, event: Any) -> None:
            super().end_decision(handle, event)
            self.seen.append(event.request.resource.name)

    telemetry = Forwarding()
    mw = GuardMiddleware(POLICY, principal=Principal("bob", ("user",)), audit=None,
                         telemetry=telemetry)  # fmt: skip
    mcp = demo_server()
    mcp.add_middleware(mw)
    async with Client(mcp) as client:
        for _ in range(3):
            assert sorted(t.name for t in await client.list_tools()) == ["echo", "fail"]
    assert sorted(telemetry.seen) == sorted(["drop_table", "echo", "fail"] * 3)


async def test_an_audit_log_that_records_listings_its_own_way_gets_every_listing(
    tmp_path: Path,
) -> None:
    """An `AuditLog` subclass that does more with each listing (`append_listing`) is
    handed every listing, not only the first: the repeats are not recorded past it
    (found in review: they went to `append_listing_again`)."""

    class Forwarding(AuditLog):
        listed: list[str]

        def append_listing(self, listing_id: str, events: Any) -> bool:
            self.listed.append(listing_id)
            return super().append_listing(listing_id, events)

    log = Forwarding(tmp_path / "a")
    log.listed = []
    mw = GuardMiddleware(POLICY, principal=Principal("bob", ("user",)), audit=log,
                         telemetry=False)  # fmt: skip
    mcp = demo_server()
    mcp.add_middleware(mw)
    async with Client(mcp) as client:
        for _ in range(3):
            assert sorted(t.name for t in await client.list_tools()) == ["echo", "fail"]
    mw.close()
    assert len(log.listed) == 3


async def test_a_mounted_servers_listing_is_not_kept_its_components_being_new_each_time() -> None:
    """A mounted server's tools reach the guard as new objects on every listing: their
    answers could never be given again, so none are kept (each would cost a listing's
    worth of work for nothing); the server's own tools' are, from the second listing on."""
    child: FastMCP[Any] = FastMCP("child")

    @child.tool(tags={"safe"})
    def ping() -> str:
        return "pong"

    mw = GuardMiddleware(POLICY, principal=Principal("bob", ("user",)), audit=None)
    mounted: FastMCP[Any] = FastMCP("main")
    mounted.mount(child, namespace="kid")
    mounted.add_middleware(mw)
    async with Client(mounted) as client:
        for _ in range(4):
            assert [t.name for t in await client.list_tools()] == ["kid_ping"]
    assert mw._answered == {}
    plain = GuardMiddleware(POLICY, principal=Principal("bob", ("user",)), audit=None)
    mcp = demo_server()
    mcp.add_middleware(plain)
    async with Client(mcp) as client:
        await client.list_tools()
        assert plain._answered == {}  # met once
        await client.list_tools()
        assert len(plain._answered) == 1
