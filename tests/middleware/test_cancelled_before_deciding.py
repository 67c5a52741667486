"""A request cancelled before it is decided (its client leaves while the caller is being
authenticated, or while the component it names is looked up) is still an attempt: it is
recorded, counted and traced as a denial with reason `cancelled`, and its cancellation
goes on out of the guard (never answered as a denial instead). Found in review: the
`CancelledError` left the guard with no record, span or metric at all.

The identity service and the backend below are slow on purpose, and let go on a signal:
an authenticator as a user writes one, and a FastMCP provider that looks its tools up
elsewhere (FastMCP's own `DatabaseProvider` example)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any, Literal

import pytest
from fastmcp import Client, FastMCP
from fastmcp.resources import Resource as FastMCPResource
from fastmcp.server.extensions import MethodBinding, ServerExtension
from fastmcp.server.middleware import CallNext, Middleware, MiddlewareContext
from fastmcp.server.providers import Provider
from fastmcp.tools import Tool
from mcp_types import Request, RequestParams
from mw_support import POLICY, Recorder, demo_server
from pydantic import BaseModel, ConfigDict, Field

from guard import GuardMiddleware, Principal
from guard.audit import AuditLog, open_store
from guard.identity.base import RequestInfo

ALICE = Principal("alice", ("user",), auth_method="held")
GREET = {"type": "ref/prompt", "name": "greet"}


class HeldIdentity:
    """An identity service that answers once `answer` is set."""

    method = "held"

    def __init__(self) -> None:
        self.asked = asyncio.Event()
        self.answer = asyncio.Event()

    async def authenticate(self, info: RequestInfo) -> Principal:
        self.asked.set()
        await self.answer.wait()
        return ALICE


class Witness(Middleware):
    """Outside the guard: what left it, per method."""

    def __init__(self) -> None:
        self.raised: list[tuple[str | None, str]] = []

    async def __call__(self, context: MiddlewareContext[Any], call_next: CallNext[Any, Any]) -> Any:
        try:
            return await call_next(context)
        except BaseException as exc:
            self.raised.append((context.method, type(exc).__name__))
            raise


async def _cancel_once(asked: asyncio.Event, request: Awaitable[Any], witness: Witness) -> None:
    """Start `request`, cancel it once the guard waits (`asked`), and wait until the
    server side has let go of it."""
    task = asyncio.ensure_future(request)
    await asyncio.wait_for(asked.wait(), 10)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    for _ in range(500):
        if witness.raised:
            return
        await asyncio.sleep(0.01)


def _records(store: Path) -> list[tuple[Any, ...]]:
    with open_store(store) as db:
        return db.sql(
            "SELECT method, kind, action, resource, user_id, authenticated, auth_method,"
            " allowed, reason, errors, status FROM decision_log ORDER BY decision_id"
        ).fetchall()


Ask = Callable[[Client[Any]], Awaitable[Any]]
REQUESTS: list[tuple[str, Ask, list[tuple[str, str, str]]]] = [
    ("tools/call", lambda c: c.call_tool("echo", {"text": "x"}), [("tool", "call", "echo")]),
    ("resources/read", lambda c: c.read_resource("data://public"),
     [("resource", "read", "data://public")]),
    ("prompts/get", lambda c: c.get_prompt("greet", {"name": "a"}), [("prompt", "get", "greet")]),
    ("completion/complete", lambda c: c.complete(GREET, {"name": "name", "value": "a"}),
     [("prompt", "get", "greet")]),
    ("tools/list", lambda c: c.list_tools(),
     [("tool", "list", "echo"), ("tool", "list", "drop_table"), ("tool", "list", "fail")]),
]  # fmt: skip


@pytest.mark.parametrize("method,ask,decided", REQUESTS, ids=[r[0] for r in REQUESTS])
async def test_a_request_cancelled_while_authenticating_is_recorded_then_still_cancelled(
    method: str, ask: Ask, decided: list[tuple[str, str, str]], tmp_path: Path,
    recorder: Recorder,
) -> None:  # fmt: skip
    identity = HeldIdentity()
    witness = Witness()
    store = tmp_path / "audit"
    mw = GuardMiddleware(POLICY, authenticator=identity, audit=AuditLog(store), telemetry=recorder)
    mcp = demo_server()
    mcp.add_middleware(witness)  # the outer one
    mcp.add_middleware(mw)
    async with Client(mcp) as client:
        await _cancel_once(identity.asked, ask(client), witness)
        # the cancellation left the guard as it came: not turned into a denial
        assert set(witness.raised) == {(method, "CancelledError")}
        identity.answer.set()
        await ask(client)  # the server goes on serving
    mw.close()

    cancelled = [e for e in recorder.events if e.decision.reason == "cancelled"]
    assert len(cancelled) == len(decided)  # observed (span, metrics) like any denial
    assert recorder.auth_failures == [] and recorder.errors == []  # no credential was judged
    rows = _records(store)
    # unknown caller, as for a failed authentication; nothing ran, so no outcome
    assert rows[: len(decided)] == [
        (method, kind, action, name, None, False, "held", False, "cancelled",
         ["cancelled while authenticating"], None)
        for kind, action, name in decided
    ]  # fmt: skip
    later = [r for r in rows[len(decided) :] if r[0] == method]
    assert {r[4] for r in later} == {"alice"} and any(r[7] for r in later)


class SlowBackend(Provider):
    """A tool and a resource looked up elsewhere, by a backend that answers once `answer`
    is set."""

    def __init__(self) -> None:
        super().__init__()
        self.asked = asyncio.Event()
        self.answer = asyncio.Event()

    async def _list_tools(self) -> Sequence[Tool]:
        def lookup(text: str) -> str:
            return text

        return [Tool.from_function(lookup, tags={"safe"})]

    async def _get_tool(self, name: str, version: Any = None) -> Tool | None:
        self.asked.set()
        await self.answer.wait()
        return await super()._get_tool(name, version)

    async def _list_resources(self) -> Sequence[FastMCPResource]:
        def public_doc() -> str:
            return "public"

        return [FastMCPResource.from_function(public_doc, uri="data://public-doc")]

    async def _get_resource(self, uri: str, version: Any = None) -> FastMCPResource | None:
        self.asked.set()
        await self.answer.wait()
        return await super()._get_resource(uri, version)


# (method, request, kind and action, the name recorded unresolved and resolved, what)
LOOKED_UP: list[tuple[str, Ask, tuple[str, str], tuple[str, str], str]] = [
    ("tools/call", lambda c: c.call_tool("lookup", {"text": "x"}), ("tool", "call"),
     ("lookup", "lookup"), "the tool"),
    ("resources/read", lambda c: c.read_resource("data://public-doc"), ("resource", "read"),
     ("data://public-doc", "public_doc"), "the resource"),
]  # fmt: skip


@pytest.mark.parametrize("method,ask,decided,names,what", LOOKED_UP, ids=[r[0] for r in LOOKED_UP])
async def test_a_request_cancelled_while_its_component_is_looked_up_is_recorded_then_cancelled(
    method: str, ask: Ask, decided: tuple[str, str], names: tuple[str, str], what: str,
    tmp_path: Path, recorder: Recorder,
) -> None:  # fmt: skip
    backend = SlowBackend()
    witness = Witness()
    store = tmp_path / "audit"
    mw = GuardMiddleware(POLICY, principal=ALICE, audit=AuditLog(store), telemetry=recorder)
    mcp: FastMCP[Any] = FastMCP("slow-backend", providers=[backend])
    mcp.add_middleware(witness)
    mcp.add_middleware(mw)
    async with Client(mcp) as client:
        await _cancel_once(backend.asked, ask(client), witness)
        assert set(witness.raised) == {(method, "CancelledError")}
        backend.answer.set()
        await ask(client)
    mw.close()
    assert [e.decision.reason for e in recorder.events if e.method == method] == [
        "cancelled", "rule"
    ]  # fmt: skip
    # the caller was known by then: recorded as who it is; the component as sent
    assert [r for r in _records(store) if r[0] == method] == [
        (method, *decided, names[0], "alice", True, "held", False, "cancelled",
         [f"cancelled while resolving {what}"], None),
        (method, *decided, names[1], "alice", True, "held", True, "rule", [], "ok"),
    ]  # fmt: skip


class TaskParams(RequestParams):
    model_config = ConfigDict(populate_by_name=True)
    task_id: str = Field(alias="taskId")


class GetTask(Request[TaskParams, Literal["tasks/get"]]):
    method: Literal["tasks/get"] = "tasks/get"
    name_param = "taskId"


class TaskState(BaseModel):
    model_config = ConfigDict(populate_by_name=True)
    task_id: str = Field(alias="taskId")
    status: str


class Tasks(ServerExtension):
    """`tasks/get` of the tasks extension, answering for any task id."""

    identifier = "io.modelcontextprotocol/tasks"

    def methods(self) -> list[MethodBinding]:
        return [MethodBinding("tasks/get", TaskParams, self._get)]

    async def _get(self, ctx: Any, params: TaskParams) -> dict[str, Any]:
        return {"taskId": params.task_id, "status": "completed"}


async def test_a_task_request_cancelled_while_authenticating_is_still_cancelled(
    tmp_path: Path, recorder: Recorder
) -> None:
    identity = HeldIdentity()
    witness = Witness()
    mw = GuardMiddleware(POLICY, authenticator=identity, audit=None, telemetry=recorder)
    mcp = demo_server()
    mcp.add_extension(Tasks())
    mcp.add_middleware(witness)
    mcp.add_middleware(mw)
    get = GetTask(params=TaskParams(task_id="t-1"))
    async with Client(mcp) as client:
        await _cancel_once(identity.asked, client.session.send_request(get, TaskState), witness)
        # not answered "Task t-1 not found", as a caller refused by authentication is
        assert set(witness.raised) == {("tasks/get", "CancelledError")}
        identity.answer.set()
        assert (await client.session.send_request(get, TaskState)).status == "completed"
    mw.close()
    # the cancelled request is a refusal, recorded (on no tool: the task was not started
    # here); the one let through is not (a task's start is its record)
    [event] = recorder.events
    assert (event.method, event.decision.reason, event.decision.errors) == (
        "tasks/get",
        "cancelled",
        ("cancelled while authenticating",),
    )
    assert (event.request.resource.name, event.request.resource.found) == (
        "(task started elsewhere)",
        False,
    )
