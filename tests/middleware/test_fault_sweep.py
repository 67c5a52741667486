"""Fail closed, swept: every step of the guard that can throw is made to throw, for every
MCP method whose path crosses it, against a real server and the real `Client`.

Each time the caller gets what an unknown component gets (a listing hides what the failure
touched, all of it when the failure is listing-wide), the handler never runs, and the
denial is recorded with reason `error` and counted in `guard_error(where)`: where the
record itself is what failed, observed; where observing failed, recorded. Failures in
what never decides (a draft, an outcome, policy texts) change nothing a caller sees.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from fastmcp import Client, FastMCP
from mcp_types import PromptReference, ResourceTemplateReference
from mw_support import Recorder

import guard._deciding
import guard._fastmcp
import guard._hooks
from guard import GuardMiddleware, Principal, load_policies
from guard.audit import AuditLog
from guard.audit.redact import Redactor
from guard.events import DecisionEvent
from guard.identity.base import RequestInfo

ALLOW_ADMINS = """
name: p
default_effect: deny
rules: [{name: admins, effect: allow, agents: {roles: [admin]}, actions: ["*"]}]
"""
ROOT = Principal("root", ("admin",))

CALLS = ("call", "read", "template", "prompt")
COMPLETIONS = ("complete_prompt", "complete_template")
LISTS = ("tools", "resources", "templates", "prompts")
EVERY = (*CALLS, *COMPLETIONS, *LISTS)

# what a caller gets for each request when it is denied: the same as for an unknown name
UNKNOWN: dict[str, tuple[str, Any]] = {
    "call": ("ToolError", "Unknown tool: 'echo'"),
    "read": ("MCPError", "Resource not found: 'data://public'"),
    "template": ("MCPError", "Resource not found: 'users://1/profile'"),
    "prompt": ("MCPError", "Unknown prompt: 'greet'"),
    **dict.fromkeys(COMPLETIONS, ("ok", [])),
    **dict.fromkeys(LISTS, ("ok", [])),
}
# each listing's own component, next to `other`, which no failure below touches
TARGETS = frozenset({"echo", "public", "profile", "greet"})


def guarded_server(ran: list[str]) -> FastMCP[Any]:
    """One component of each kind a request names, one more of each in every listing; each
    handler notes that it ran."""
    mcp: FastMCP[Any] = FastMCP("swept")

    @mcp.tool
    def echo(text: str) -> str:
        ran.append("echo")
        return text

    @mcp.resource("data://public", name="public")
    def public() -> str:
        ran.append("public")
        return "public"

    @mcp.resource("users://{uid}/profile", name="profile")
    def profile(uid: str) -> str:
        ran.append("profile")
        return uid

    @mcp.prompt
    def greet(name: str) -> str:
        ran.append("greet")
        return name

    for make in (mcp.tool, mcp.prompt):
        make(name="other")(lambda: "other")
    mcp.resource("data://other", name="other")(lambda: "other")
    mcp.resource("other://{x}", name="other")(lambda x: x)

    @mcp.completion
    def complete(ref: Any, argument: Any, context: Any) -> list[str]:
        ran.append("complete")
        return ["alpha"]

    return mcp


async def ask(client: Client[Any], request: str) -> tuple[str, Any]:
    """Make `request`; what the caller gets: ("ok", what it shows) or the error."""
    try:
        if request == "call":
            return "ok", (await client.call_tool("echo", {"text": "x"})).data
        if request in ("read", "template"):
            uri = "data://public" if request == "read" else "users://1/profile"
            return "ok", [c.text for c in await client.read_resource(uri)]  # type: ignore[union-attr]
        if request == "prompt":
            return "ok", len((await client.get_prompt("greet", {"name": "x"})).messages)
        if request in COMPLETIONS:
            ref: Any = (
                PromptReference(type="ref/prompt", name="greet")
                if request == "complete_prompt"
                else ResourceTemplateReference(type="ref/resource", uri="users://{uid}/profile")
            )
            argument = {"name": "name" if request == "complete_prompt" else "uid", "value": "a"}
            return "ok", (await client.complete(ref, argument)).values
        listing = {
            "tools": client.list_tools,
            "resources": client.list_resources,
            "templates": client.list_resource_templates,
            "prompts": client.list_prompts,
        }
        return "ok", sorted(c.name for c in await listing[request]())  # fmt: skip
    except Exception as exc:
        return type(exc).__name__, str(exc)


class Fault(Exception):
    """What the guard's step throws: no RuntimeError, which some steps expect for "none"."""


def fail(*args: Any, **kwargs: Any) -> Any:
    raise Fault("detail that must not reach the caller")


async def fail_async(*args: Any, **kwargs: Any) -> Any:
    raise Fault("detail that must not reach the caller")


def fail_once(real: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
    """Fails when the guard looks the component up; FastMCP's own lookup afterwards works."""
    calls: list[None] = []

    async def lookup(*args: Any, **kwargs: Any) -> Any:
        calls.append(None)
        if len(calls) == 1:
            raise Fault("lookup")
        return await real(*args, **kwargs)

    return lookup


def fail_for_targets(real: Callable[..., Any]) -> Callable[..., Any]:
    """Fails to convert the components requests name; `other` converts."""

    def convert(component: Any, *server: Any) -> Any:
        if component.name in TARGETS:
            raise Fault("unrepresentable")
        return real(component, *server)

    return convert


class BrokenAuthenticator:
    method = "test"

    async def authenticate(self, info: RequestInfo) -> Principal:
        raise Fault("token abc in the message")


class NotAPrincipal(BrokenAuthenticator):
    async def authenticate(self, info: RequestInfo) -> Any:
        return "root"


class Admits(BrokenAuthenticator):
    async def authenticate(self, info: RequestInfo) -> Principal:
        return ROOT


class CrashingPolicySet:
    """A policy set whose evaluator has a bug (not a bad policy)."""

    def __init__(self) -> None:
        real = load_policies(ALLOW_ADMINS)
        self.hash, self.policies = real.hash, real.policies

    def decide(self, request: Any) -> Any:
        raise Fault("evaluator bug")


class FaultyTelemetry(Recorder):
    """Fails in the methods named in `failing`; remembers the rest."""

    __slots__ = ("failing",)

    def __init__(self, failing: tuple[str, ...] = ()) -> None:
        super().__init__()
        self.failing = failing

    def start_decision(self, method: str, target: str) -> Any:
        if "start_decision" in self.failing:
            raise Fault("tracer down")
        if "handle" in self.failing:
            return None  # a `Telemetry` subclass that left the protocol's stub in place
        return super().start_decision(method, target)

    def end_decision(self, handle: Any, event: DecisionEvent) -> None:
        if "end_decision" in self.failing:
            raise Fault("exporter down")
        super().end_decision(handle, event)

    def guard_error(self, where: str) -> None:
        super().guard_error(where)
        if "guard_error" in self.failing:
            raise Fault("metrics down")


class Captured:
    """The decision events the guard handed the audit log."""

    def __init__(self, log: AuditLog) -> None:
        self.events: list[DecisionEvent] = []
        self.append, self.append_listing = log.append, log.append_listing

    def one(self, event: DecisionEvent) -> bool:
        self.events.append(event)
        return self.append(event)

    def listing(self, listing_id: str, events: Any) -> bool:
        self.events.extend(events)
        return self.append_listing(listing_id, events)


@dataclass(frozen=True)
class Point:
    """A step of the guard made to throw, and what the guard must make of it."""

    where: str  # the `guard_error` the failure is counted as
    requests: tuple[str, ...] = EVERY  # the requests whose path crosses the step
    # (monkeypatch, guard, server, request made) -> None
    inject: Callable[[pytest.MonkeyPatch, GuardMiddleware, FastMCP[Any], str], Any] = lambda *_: (
        None
    )
    guard: dict[str, Any] = field(default_factory=dict)  # GuardMiddleware arguments
    failing: tuple[str, ...] = ()  # telemetry methods that fail
    recorded: bool = True  # the audit log was handed the error denial
    observed: bool = True  # the telemetry was told of the error denial
    per_component: bool = False  # a listing hides only the components it touched


def _patch_lookup(mp: pytest.MonkeyPatch, mw: Any, mcp: FastMCP[Any], request: str) -> None:
    lookup = {"call": "get_tool", "prompt": "get_prompt", "read": "get_resource",
              "template": "get_resource"}.get(request, "_completion_target")  # fmt: skip
    mp.setattr(mcp, lookup, fail_once(getattr(mcp, lookup)))


def _patch_conversion(mp: pytest.MonkeyPatch, *_: Any) -> None:
    mp.setattr(guard._fastmcp, "to_resource", fail_for_targets(guard._fastmcp.to_resource))
    mp.setattr(guard._hooks, "read_target", fail)


def _appends(result: Callable[..., Any]) -> Callable[..., None]:
    def inject(mp: pytest.MonkeyPatch, mw: GuardMiddleware, *_: Any) -> None:
        mp.setattr(mw.audit, "append", result)
        mp.setattr(mw.audit, "append_listing", result)

    return inject


def _redaction_fails(mp: pytest.MonkeyPatch, *_: Any) -> None:
    mp.setattr(Redactor, "redact", fail)
    mp.setattr(Redactor, "measured", fail)  # (what `append` redacts a call's arguments with)


POINTS: dict[str, Point] = {
    "authenticator raises": Point(
        "authenticate", guard={"authenticator": BrokenAuthenticator(), "principal": None}
    ),
    "authenticator returns no Principal": Point(
        "authenticate", guard={"authenticator": NotAPrincipal(), "principal": None}
    ),
    "session id": Point(
        "authenticate", inject=lambda mp, *_: mp.setattr(guard._deciding, "session_of", fail)
    ),
    "request info for the authenticator": Point(
        "authenticate",
        guard={"authenticator": Admits(), "principal": None},
        inject=lambda mp, *_: mp.setattr(guard._deciding, "request_info", fail),
    ),
    "transport": Point(
        "authenticate",
        inject=lambda mp, *_: mp.setattr(guard._deciding, "current_transport", fail),
    ),
    "component conversion": Point("resolve", inject=_patch_conversion, per_component=True),
    "component lookup": Point("resolve", (*CALLS, *COMPLETIONS), inject=_patch_lookup),
    "lookup cache": Point(
        "resolve",
        ("call", "prompt"),
        inject=lambda mp, *_: mp.setattr(guard._fastmcp.LookupCache, "get", fail_async),
    ),
    "visibility scope": Point(
        "resolve",
        ("call", "prompt"),
        inject=lambda mp, *_: mp.setattr(guard._hooks, "visibility_scope", fail),
    ),
    "policy set decides": Point("decide", guard={"policies": CrashingPolicySet()}),
    "policy set decides, guard_error raises": Point(
        "decide", guard={"policies": CrashingPolicySet()}, failing=("guard_error",)
    ),
    "decision id": Point(
        "record", inject=lambda mp, *_: mp.setattr(guard._deciding, "uuid7", fail)
    ),
    "record raises": Point("record", inject=_appends(fail), recorded=False),
    "record refused": Point("record", inject=_appends(lambda *_: False), recorded=False),
    "redaction of the record": Point("record", inject=_redaction_fails, recorded=False),
    "span start raises": Point("observe", failing=("start_decision",), observed=False),
    "span handle without ids": Point("observe", failing=("handle",), observed=False),
    # observed after it is recorded: the record holds the decision made, the metrics the error
    "span end raises": Point("observe", failing=("end_decision",), recorded=False, observed=False),
    "span end and guard_error raise": Point(
        "observe", failing=("end_decision", "guard_error"), recorded=False, observed=False
    ),
}

CASES = [
    pytest.param(point, request, id=f"{name}-{request}")
    for name, point in POINTS.items()
    for request in point.requests
]


@pytest.mark.parametrize(("point", "request_made"), CASES)
async def test_a_guard_step_that_throws_denies_and_is_recorded(
    point: Point, request_made: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ran: list[str] = []
    mcp = guarded_server(ran)
    telemetry = FaultyTelemetry(point.failing)
    log = AuditLog(tmp_path / "audit")
    captured = Captured(log)
    monkeypatch.setattr(log, "append", captured.one)
    monkeypatch.setattr(log, "append_listing", captured.listing)
    arguments: dict[str, Any] = {"principal": ROOT, **point.guard}
    policies = arguments.pop("policies", ALLOW_ADMINS)
    mw = GuardMiddleware(policies, audit=log, telemetry=telemetry, **arguments)
    mcp.add_middleware(mw)
    point.inject(monkeypatch, mw, mcp, request_made)
    try:
        async with Client(mcp) as client:
            answer = await ask(client, request_made)
    finally:
        monkeypatch.undo()
        mw.close()

    if point.per_component and request_made in LISTS:
        assert answer == ("ok", ["other"])  # the one it could not read is hidden, only it
    else:
        assert answer == UNKNOWN[request_made]
    assert ran == []  # no handler ran (a completion's neither)
    assert point.where in telemetry.errors
    # the error denial, wherever it could still go
    touched = [e for e in captured.events if e.request.resource.name != "other"]
    if point.recorded:
        assert touched and {e.decision.reason for e in touched} == {"error"}
    observed = [e for e in telemetry.events if e.request.resource.name != "other"]
    if point.observed:
        assert observed and {e.decision.reason for e in observed} == {"error"}
    assert all(not e.decision.allowed for e in observed)


# what a caller gets for each request when it is allowed
ALLOWED: dict[str, tuple[str, Any]] = {
    "call": ("ok", "x"),
    "read": ("ok", ["public"]),
    "template": ("ok", ["1"]),
    "prompt": ("ok", 1),
    **dict.fromkeys(COMPLETIONS, ("ok", ["alpha"])),
    "tools": ("ok", ["echo", "other"]),
    "resources": ("ok", ["other", "public"]),
    "templates": ("ok", ["other", "profile"]),
    "prompts": ("ok", ["greet", "other"]),
}
HANDLER = {"call": "echo", "read": "public", "template": "profile", "prompt": "greet"}


async def _answer(mw: GuardMiddleware, ran: list[str], request_made: str) -> tuple[str, Any]:
    mcp = guarded_server(ran)
    mcp.add_middleware(mw)
    try:
        async with Client(mcp) as client:
            return await ask(client, request_made)
    finally:
        mw.close()


@pytest.mark.parametrize("request_made", EVERY)
async def test_a_draft_that_throws_changes_no_answer(request_made: str) -> None:
    telemetry = FaultyTelemetry()
    mw = GuardMiddleware(ALLOW_ADMINS, principal=ROOT, shadow=CrashingPolicySet(), audit=None,
                         telemetry=telemetry)  # fmt: skip
    assert await _answer(mw, [], request_made) == ALLOWED[request_made]
    assert telemetry.events and {e.decision.reason for e in telemetry.events} == {"rule"}
    assert {e.shadow.reason for e in telemetry.events if e.shadow} == {"error"}
    assert set(telemetry.errors) == {"shadow"}


@pytest.mark.parametrize("request_made", CALLS)
async def test_an_outcome_that_cannot_be_queued_leaves_the_answer(
    request_made: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The handler already ran: the outcome is what is lost, and it is counted."""
    telemetry = FaultyTelemetry()
    log = AuditLog(tmp_path / "audit")
    monkeypatch.setattr(log, "append_outcome", fail)
    mw = GuardMiddleware(ALLOW_ADMINS, principal=ROOT, audit=log, telemetry=telemetry)
    ran: list[str] = []
    assert await _answer(mw, ran, request_made) == ALLOWED[request_made]
    assert ran == [HANDLER[request_made]] and telemetry.errors == ["outcome"]


async def test_policy_texts_that_cannot_be_recorded_stop_no_reload(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    telemetry = FaultyTelemetry()
    log = AuditLog(tmp_path / "audit")
    mw = GuardMiddleware("name: p\nrules: []\n", principal=ROOT, audit=log, telemetry=telemetry)
    monkeypatch.setattr(log, "record_policies", fail)
    mw.reload_policies(ALLOW_ADMINS)
    mw.set_shadow(ALLOW_ADMINS)
    assert await _answer(mw, [], "call") == ALLOWED["call"]
    assert telemetry.reloads[-1][0] == "ok" and telemetry.events[-1].shadow is not None


async def test_a_durable_wait_that_throws_denies_the_call(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """In durable mode a call runs once its record is on disk: a wait that breaks (not a
    caller that left) leaves that unknown, so the call is denied and observed as denied;
    its record, queued as allowed, gets the outcome that says it did not run."""
    from guard.audit import open_store

    telemetry = FaultyTelemetry()
    log = AuditLog(tmp_path / "audit", durable=True)
    monkeypatch.setattr(log, "wait_durable", fail_async)
    mw = GuardMiddleware(ALLOW_ADMINS, principal=ROOT, audit=log, telemetry=telemetry)
    ran: list[str] = []
    assert await _answer(mw, ran, "call") == UNKNOWN["call"]
    assert ran == [] and telemetry.errors == ["record"]
    assert [e.decision.reason for e in telemetry.events] == ["error"]
    with open_store(tmp_path / "audit") as db:
        assert db.sql(
            "SELECT allowed, status, error_class FROM decision_log WHERE method = 'tools/call'"
        ).fetchall() == [(True, "error", "UndurableDecision")]


@pytest.mark.parametrize("failing", ["record", "observe"])
@pytest.mark.parametrize("request_made", ["tools", "prompts"])
async def test_a_listing_answered_again_that_throws_shows_nothing(
    request_made: str, failing: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The answers a listing gets again (`_list_again`) are recorded and observed again;
    either failing hides the listing, as it would a listing decided afresh."""
    from prometheus_client import CollectorRegistry

    from guard.telemetry import GuardTelemetry

    breaking = False  # from the listing answered again on

    class ReplayBreaks(GuardTelemetry):
        def prepare_listing(self, events: Any) -> Any:
            observe = super().prepare_listing(events)

            def observe_or_break(handle: Any, listing_id: str) -> None:
                if breaking and failing == "observe":
                    fail()
                observe(handle, listing_id)

            return observe_or_break

    registry = CollectorRegistry()
    log = AuditLog(tmp_path / "audit")
    mw = GuardMiddleware(ALLOW_ADMINS, principal=ROOT, audit=log,
                         telemetry=ReplayBreaks(registry=registry))  # fmt: skip
    mcp = guarded_server([])
    mcp.add_middleware(mw)
    try:
        async with Client(mcp) as client:
            for _ in range(2):  # answers kept from the second identical listing on
                assert await ask(client, request_made) == ALLOWED[request_made]
            assert len(mw._answered) == 1
            breaking = True
            if failing == "record":
                monkeypatch.setattr(log, "append_listing_again", fail)
            assert await ask(client, request_made) == ("ok", [])
    finally:
        mw.close()
    assert registry.get_sample_value("mcpguard_guard_errors_total", {"where": failing}) == 1


@pytest.mark.parametrize("request_made", ["tools", "prompts"])
async def test_a_listing_observed_at_once_that_throws_shows_nothing(request_made: str) -> None:
    """A listing decided afresh is observed at once (`prepare_listing`) when its telemetry
    can: that failing hides the listing, as ending each decision failing would."""
    from prometheus_client import CollectorRegistry

    from guard.telemetry import GuardTelemetry

    class Breaks(GuardTelemetry):
        def prepare_listing(self, events: Any) -> Any:
            return fail

    registry = CollectorRegistry()
    mw = GuardMiddleware(ALLOW_ADMINS, principal=ROOT, audit=None,
                         telemetry=Breaks(registry=registry))  # fmt: skip
    mcp = guarded_server([])
    mcp.add_middleware(mw)
    try:
        async with Client(mcp) as client:
            assert await ask(client, request_made) == ("ok", [])
    finally:
        mw.close()
    assert registry.get_sample_value("mcpguard_guard_errors_total", {"where": "observe"}) == 1
