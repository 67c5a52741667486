"""Fail closed: whatever goes wrong inside the guard denies, and is still observed."""

from __future__ import annotations

from typing import Any

import pytest
from fastmcp import Client
from fastmcp.exceptions import ToolError
from mw_support import POLICY, Recorder, demo_server

from guard import AuthenticationError, GuardMiddleware, Principal, load_policies
from guard.identity.base import RequestInfo


class RefusingAuth:
    method = "test"

    async def authenticate(self, info: RequestInfo) -> Principal:
        raise AuthenticationError("invalid_token", "token rejected")


class BrokenAuth:
    method = "test"

    def __init__(self) -> None:
        self.seen: list[RequestInfo] = []

    async def authenticate(self, info: RequestInfo) -> Principal:
        self.seen.append(info)
        raise RuntimeError("secret-token-abc leaked into an exception")


class ExplodingPolicySet:
    """Stands in for a policy set whose evaluator crashes (a bug, not a bad policy)."""

    def __init__(self) -> None:
        real = load_policies(POLICY)
        self.hash = real.hash
        self.policies = real.policies

    def decide(self, request: Any) -> Any:
        raise RuntimeError("evaluator bug")


async def test_authentication_failure_denies_with_its_reason(recorder: Recorder) -> None:
    mcp = demo_server()
    mcp.add_middleware(
        GuardMiddleware(POLICY, authenticator=RefusingAuth(), audit=None, telemetry=recorder)
    )
    async with Client(mcp) as client:
        assert await client.list_tools() == []
        with pytest.raises(ToolError, match="Unknown tool: 'echo'"):
            await client.call_tool("echo", {"text": "x"})
    assert recorder.events and all(not e.decision.allowed for e in recorder.events)
    assert {e.decision.reason for e in recorder.events} == {"invalid_token"}
    assert ("test", "invalid_token") in recorder.auth_failures  # the auth method
    assert not recorder.events[-1].request.principal.authenticated


async def test_explicit_denial_of_an_unauthenticated_caller_gives_the_reason(
    recorder: Recorder,
) -> None:
    mcp = demo_server()
    mcp.add_middleware(
        GuardMiddleware(
            POLICY,
            authenticator=RefusingAuth(),
            audit=None,
            telemetry=recorder,
            explicit_denials=True,
        )
    )
    async with Client(mcp) as client:
        with pytest.raises(ToolError, match=r"^Access to tool 'echo' denied \(invalid_token\)$"):
            await client.call_tool("echo", {"text": "x"})


async def test_authenticator_crash_denies_with_reason_error(
    recorder: Recorder, caplog: pytest.LogCaptureFixture
) -> None:
    auth = BrokenAuth()
    mcp = demo_server()
    mcp.add_middleware(GuardMiddleware(POLICY, authenticator=auth, audit=None, telemetry=recorder))
    async with Client(mcp) as client:
        with pytest.raises(ToolError, match="Unknown tool: 'echo'"):
            await client.call_tool("echo", {"text": "x"})
    event = recorder.events[-1]
    assert event.decision.reason == "error" and not event.decision.allowed
    # the record says where the guard failed (replay tells it from a policy's error)
    assert event.decision.errors == ("guard error while authenticating",)
    assert "authenticate" in recorder.errors
    assert auth.seen[0].transport == "memory"
    assert "secret-token-abc" not in caplog.text  # the exception text may hold a secret


async def test_memory_transport_uses_fixed_principal_not_authenticator(
    recorder: Recorder,
) -> None:
    mcp = demo_server()
    alice = Principal("alice", roles=("user",), auth_method="stdio")
    mcp.add_middleware(
        GuardMiddleware(
            POLICY, authenticator=BrokenAuth(), principal=alice, audit=None, telemetry=recorder
        )
    )
    async with Client(mcp) as client:
        assert (await client.call_tool("echo", {"text": "x"})).data == "echo: x"
    assert recorder.events[-1].request.principal == alice


async def test_evaluator_crash_denies_and_is_observed(recorder: Recorder) -> None:
    mcp = demo_server()
    root = Principal("root", ("admin",))
    mcp.add_middleware(
        GuardMiddleware(ExplodingPolicySet(), principal=root, audit=None, telemetry=recorder)
    )
    async with Client(mcp) as client:
        assert await client.list_tools() == []
        with pytest.raises(ToolError, match="Unknown tool"):
            await client.call_tool("echo", {"text": "x"})
    assert recorder.events and {e.decision.reason for e in recorder.events} == {"error"}
    assert recorder.errors.count("decide") == len(recorder.events)


class ExplodingTelemetry(Recorder):
    def end_decision(self, handle: Any, event: Any) -> None:
        raise RuntimeError("exporter down")


async def test_unobservable_decision_is_not_enforced_as_allow() -> None:
    telemetry = ExplodingTelemetry()
    mcp = demo_server()
    mcp.add_middleware(
        GuardMiddleware(
            POLICY, principal=Principal("root", ("admin",)), audit=None, telemetry=telemetry
        )
    )
    async with Client(mcp) as client:
        with pytest.raises(ToolError, match="Unknown tool"):
            await client.call_tool("echo", {"text": "x"})
    assert "observe" in telemetry.errors


def test_bad_configuration_is_rejected_with_a_clear_message() -> None:
    with pytest.raises(TypeError, match="authenticate"):
        GuardMiddleware(POLICY, authenticator=object(), audit=None)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="Principal"):
        GuardMiddleware(POLICY, principal="alice", audit=None)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="watch="):
        GuardMiddleware(POLICY, watch=1.0, audit=None)


class SpanlessTelemetry(Recorder):
    def start_decision(self, method: str, target: str) -> Any:
        raise RuntimeError("tracer broken")


async def test_decision_without_a_span_is_denied_and_still_recorded(tmp_path: Any) -> None:
    from guard.audit import open_store

    telemetry = SpanlessTelemetry()
    mw = GuardMiddleware(
        POLICY,
        principal=Principal("root", ("admin",)),
        audit=tmp_path / "audit",
        telemetry=telemetry,
    )
    mcp = demo_server()
    mcp.add_middleware(mw)
    async with Client(mcp) as client:
        with pytest.raises(ToolError, match="Unknown tool"):
            await client.call_tool("echo", {"text": "x"})
        assert await client.list_tools() == []  # a listing without its span shows nothing
    mw.close()
    with open_store(tmp_path / "audit") as db:
        rows = db.sql("SELECT resource, allowed, reason FROM decisions WHERE action = 'call'")
        listed = db.sql("SELECT DISTINCT allowed, reason FROM decisions WHERE action = 'list'")
        assert rows.fetchall() == [("echo", False, "error")]
        assert listed.fetchall() == [(False, "error")]
    assert "observe" in telemetry.errors


class ExplodingDraft(ExplodingPolicySet):
    pass


async def test_a_broken_shadow_never_changes_enforcement(recorder: Recorder) -> None:
    mcp = demo_server()
    mcp.add_middleware(
        GuardMiddleware(
            POLICY,
            principal=Principal("root", ("admin",)),
            shadow=ExplodingDraft(),
            audit=None,
            telemetry=recorder,
        )
    )
    async with Client(mcp) as client:
        assert (await client.call_tool("echo", {"text": "x"})).data == "echo: x"
    event = recorder.events[-1]
    assert event.decision.allowed and event.shadow is not None
    assert event.shadow.reason == "error" and "shadow" in recorder.errors


def test_a_policy_that_does_not_load_is_refused_at_construction(tmp_path: Any) -> None:
    from guard import PolicyError

    with pytest.raises(PolicyError, match="effect"):
        GuardMiddleware(
            "name: p\nrules:\n  - {name: r, effect: maybe}\n",
            audit=tmp_path / "audit",
            telemetry=False,
        )


async def test_a_list_item_the_guard_cannot_read_is_hidden_and_recorded(
    recorder: Recorder,
) -> None:
    from fastmcp.server.middleware import Middleware

    class Junk:
        name = "junk"

    class AddsJunk(Middleware):  # runs inside the guard: its output is what the guard filters
        async def on_list_prompts(self, context: Any, call_next: Any) -> Any:
            return [*await call_next(context), Junk()]

    mcp = demo_server()
    mcp.add_middleware(
        GuardMiddleware(
            POLICY, principal=Principal("root", ("admin",)), audit=None, telemetry=recorder
        )
    )
    mcp.add_middleware(AddsJunk())
    async with Client(mcp) as client:
        assert sorted(p.name for p in await client.list_prompts()) == ["admin_prompt", "greet"]
    junk = next(e for e in recorder.events if e.request.resource.name == "junk")
    assert junk.request.resource.kind == "prompt" and junk.decision.reason == "error"
    assert "resolve" in recorder.errors


class BrokenRedactor:
    """Redaction that blows up on one argument value: its record cannot be queued."""

    def redact(self, args: Any) -> Any:
        if args and "boom" in str(args):
            raise RuntimeError("redactor broken")
        return args, ()


async def test_a_decision_that_cannot_be_recorded_is_not_enforced_as_an_allow(
    tmp_path: Any, recorder: Recorder
) -> None:
    from guard.audit import AuditLog, open_store

    ran: list[str] = []
    log = AuditLog(tmp_path / "audit", redactor=BrokenRedactor())  # type: ignore[arg-type]
    mw = GuardMiddleware(POLICY, principal=Principal("root", ("admin",)), audit=log,
                         telemetry=recorder)  # fmt: skip
    mcp = demo_server()

    @mcp.tool(tags={"safe"})
    def note(text: str) -> str:
        ran.append(text)
        return text

    mcp.add_middleware(mw)
    async with Client(mcp) as client:
        assert (await client.call_tool("note", {"text": "fine"})).data == "fine"
        with pytest.raises(ToolError, match="Unknown tool"):
            await client.call_tool("note", {"text": "boom"})
    assert ran == ["fine"]  # the tool never ran for the call it could not record
    assert log.stats()["append_errors"] == 1 and recorder.errors.count("record") == 1

    mw.close()
    with open_store(tmp_path / "audit") as db:
        assert db.sql("SELECT args FROM decisions WHERE method = 'tools/call'").fetchall() == [
            ('{"text":"fine"}',)
        ]


async def test_a_listing_that_cannot_be_recorded_shows_nothing(
    tmp_path: Any, recorder: Recorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    from guard.audit import AuditLog

    log = AuditLog(tmp_path / "audit")
    mw = GuardMiddleware(POLICY, principal=Principal("root", ("admin",)), audit=log,
                         telemetry=recorder)  # fmt: skip
    mcp = demo_server()
    mcp.add_middleware(mw)
    async with Client(mcp) as client:
        assert await client.list_tools()
        monkeypatch.setattr(log, "_put", lambda *a, **k: 1 / 0)  # the queue breaks
        assert await client.list_tools() == []
    assert log.stats()["append_errors"] == 1 and recorder.errors.count("record") == 1
    mw.close()


async def test_an_audit_log_that_answers_neither_yes_nor_no_is_taken_for_a_no(
    tmp_path: Any, recorder: Recorder
) -> None:
    """Only `False` from `append`/`append_listing` denied: a subclass that forgot to
    return (None) had every call allowed and every component shown, recorded or not."""
    from guard.audit import AuditLog

    class Forgetful(AuditLog):
        def append(self, event: Any) -> Any:
            super().append(event)

        def append_listing(self, listing_id: str, events: Any) -> Any:
            super().append_listing(listing_id, events)

    ran: list[str] = []
    log = Forgetful(tmp_path / "audit")
    mw = GuardMiddleware(POLICY, principal=Principal("root", ("admin",)), audit=log,
                         telemetry=recorder)  # fmt: skip
    mcp = demo_server()

    @mcp.tool(tags={"safe"})
    def note(text: str) -> str:
        ran.append(text)
        return text

    mcp.add_middleware(mw)
    async with Client(mcp) as client:
        assert await client.list_tools() == []
        with pytest.raises(ToolError, match="Unknown tool"):
            await client.call_tool("note", {"text": "x"})
    assert ran == [] and recorder.errors.count("record") == 2
    mw.close()


class _Boom:
    """A `Telemetry` whose backend is down: each method named in `failing` raises."""

    def __init__(self, *failing: str) -> None:
        self.failing = set(failing)

    def _maybe(self, name: str) -> None:
        if name in self.failing:
            raise RuntimeError("exporter down")

    def start_decision(self, method: str, target: str) -> Any:
        self._maybe("start_decision")

        class Handle:
            trace_id = span_id = ""

        return Handle()

    def end_decision(self, handle: Any, event: Any) -> None:
        self._maybe("end_decision")

    def auth_failure(self, method: str, reason: str) -> None:
        self._maybe("auth_failure")

    def policy_reload(self, result: str, policy_set: Any) -> None:
        self._maybe("policy_reload")

    def guard_error(self, where: str) -> None:
        self._maybe("guard_error")


@pytest.mark.parametrize("failing", [("end_decision", "guard_error"), ("auth_failure",)])
async def test_a_telemetry_that_raises_still_leaves_a_recorded_denial_that_looks_like_absence(
    tmp_path: Any, failing: tuple[str, ...]
) -> None:
    """Found in review: a telemetry raising while counting a guard error or an
    authentication failure escaped the middleware ("Internal server error", no record)."""
    from fastmcp import FastMCP

    from guard.audit import open_store

    class Refuse:
        method = "api_key"

        async def authenticate(self, info: Any) -> Principal:
            raise AuthenticationError("invalid_api_key")

    mcp: FastMCP[Any] = FastMCP("s")

    @mcp.tool
    def t(x: str) -> str:
        return x

    kwargs: dict[str, Any] = (
        {"authenticator": Refuse()}
        if failing == ("auth_failure",)
        else {"principal": Principal("a")}
    )
    policy = "name: p\nrules: [{name: r, effect: allow}]\n"
    guard = GuardMiddleware(
        policy, audit=str(tmp_path / "store"), telemetry=_Boom(*failing), **kwargs
    )
    mcp.add_middleware(guard)
    async with Client(mcp) as client:
        with pytest.raises(ToolError) as denied:
            await client.call_tool("t", {"x": "1"})
    guard.close()
    assert str(denied.value) == "Unknown tool: 't'"
    with open_store(tmp_path / "store") as store:
        rows = store.sql(
            "SELECT allowed, status, error_class FROM decision_log WHERE method = 'tools/call'"
        ).fetchall()
    if failing == ("auth_failure",):
        assert rows == [(False, None, None)]
    else:  # recorded as decided, then observed: the call did not run, its outcome says why
        assert rows == [(True, "error", "UnobservedDecision")]


async def test_a_call_that_cannot_be_recorded_is_counted_as_the_denial_it_is(
    tmp_path: Any,
) -> None:
    """Found in review: the decision was observed before it was recorded, so the metrics
    and the span counted a call refused for want of a record as allowed."""
    from prometheus_client import CollectorRegistry

    from guard.audit import AuditLog
    from guard.telemetry import GuardTelemetry

    registry = CollectorRegistry()
    log = AuditLog(tmp_path / "audit", redactor=BrokenRedactor())  # type: ignore[arg-type]
    mw = GuardMiddleware(POLICY, principal=Principal("root", ("admin",)), audit=log,
                         telemetry=GuardTelemetry(registry=registry))  # fmt: skip
    mcp = demo_server()

    @mcp.tool(tags={"safe"})
    def note(text: str) -> str:
        return text

    mcp.add_middleware(mw)
    async with Client(mcp) as client:
        with pytest.raises(ToolError, match="Unknown tool"):
            await client.call_tool("note", {"text": "boom"})
    mw.close()
    samples = {
        (s.labels["decision"], s.labels["reason"]): s.value
        for metric in registry.collect() if metric.name == "mcpguard_decisions"
        for s in metric.samples if s.name == "mcpguard_decisions_total" and s.value
    }  # fmt: skip
    assert samples == {("deny", "error"): 1.0}


async def test_a_listing_that_cannot_be_recorded_is_counted_as_hidden(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A listing is observed after it is recorded, as a call is: one that cannot be
    recorded shows nothing, and its components count as the denials they are."""
    from prometheus_client import CollectorRegistry

    from guard.audit import AuditLog
    from guard.telemetry import GuardTelemetry

    registry = CollectorRegistry()
    log = AuditLog(tmp_path / "audit")
    monkeypatch.setattr(log, "append_listing", lambda *args: False)  # the queue refuses
    mw = GuardMiddleware(POLICY, principal=Principal("root", ("admin",)), audit=log,
                         telemetry=GuardTelemetry(registry=registry))  # fmt: skip
    mcp = demo_server()
    mcp.add_middleware(mw)
    async with Client(mcp) as client:
        assert await client.list_tools() == []
    mw.close()
    counted = _verdicts(registry)
    assert list(counted) == [("deny", "error")] and counted[("deny", "error")] >= 2


async def test_a_listing_answered_again_that_cannot_be_recorded_is_counted_as_hidden(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The answers a listing gets again are recorded before they are shown, as the first
    listing's were: when the record cannot be queued, nothing is shown and the components
    count as error denials."""
    from prometheus_client import CollectorRegistry

    from guard.audit import AuditLog
    from guard.telemetry import GuardTelemetry

    registry = CollectorRegistry()
    log = AuditLog(tmp_path / "audit")
    mw = GuardMiddleware(POLICY, principal=Principal("root", ("admin",)), audit=log,
                         telemetry=GuardTelemetry(registry=registry))  # fmt: skip
    mcp = demo_server()
    mcp.add_middleware(mw)
    async with Client(mcp) as client:
        listed = len(await client.list_tools())
        assert len(await client.list_tools()) == listed == 3 and len(mw._answered) == 1
        monkeypatch.setattr(log, "append_listing_again", lambda *args: False)
        assert await client.list_tools() == []
    mw.close()
    assert _verdicts(registry) == {("allow", "rule"): 2 * listed, ("deny", "error"): listed}


def _verdicts(registry: Any) -> dict[tuple[str, str], float]:
    """`mcpguard_decisions_total` summed by (decision, reason)."""
    counted: dict[tuple[str, str], float] = {}
    for metric in registry.collect():
        for s in metric.samples:
            if s.name == "mcpguard_decisions_total" and s.value:
                key = (s.labels["decision"], s.labels["reason"])
                counted[key] = counted.get(key, 0.0) + s.value
    return counted
