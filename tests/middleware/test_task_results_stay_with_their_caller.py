"""A tool run as a background task (the `io.modelcontextprotocol/tasks` extension,
`fastmcp-tasks`) answers `tools/call` with a task id; its result is fetched later with
`tasks/get` and the task ended with `tasks/cancel`. Those methods are the extension's, and
the extension scopes tasks by FastMCP's own OAuth token only: behind the guard's API keys
or JWTs every task is "anonymous". Found in review (with fastmcp-tasks 4.1.4 over HTTP):
the guard passed `tasks/*` through untouched, so a caller with another principal's key,
a wrong key or none at all read the result of an HR task and cancelled it, given its id
(which SEP-2243 puts in the `Mcp-Name` header for intermediaries to route on).

The stand-in extension below serves `tasks/get` and `tasks/cancel` as fastmcp-tasks does,
without its Docket backend.

Those refusals were not recorded either: someone probing task ids with another
principal's key left no trace. Each is now a decision record on the tool that started
the task (or on no tool, for a task started elsewhere)."""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastmcp import FastMCP
from fastmcp.server.extensions import MethodBinding, ServerExtension
from mcp.shared.exceptions import MCPError
from mcp_types import INVALID_PARAMS, RequestParams
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client import CollectorRegistry, generate_latest
from pydantic import BaseModel, ConfigDict, Field
from servers import rpc_headers, rpc_meta, serving_in_thread

from guard import create_api_key_middleware
from guard.audit import open_store
from guard.telemetry import GuardTelemetry

HR_KEY = "hr-key-aaaaaaaaaaaaaaaaaaaa"
HR2_KEY = "hr2-key-cccccccccccccccccccc"
INTERN_KEY = "intern-key-bbbbbbbbbbbbbbbb"

POLICY = """
name: p
default_effect: deny
rules:
  - {name: hr, effect: allow, agents: {roles: [hr]}, actions: ["*"]}
"""


class TaskParams(RequestParams):
    model_config = ConfigDict(populate_by_name=True)
    task_id: str = Field(alias="taskId")


class CreateTaskResult(BaseModel):
    model_config = ConfigDict(populate_by_name=True, serialize_by_alias=True)
    task_id: str = Field(alias="taskId")
    status: str = "working"
    result_type: str = Field("task", alias="resultType")


class Tasks(ServerExtension):
    """Runs every call as a task; answers for any task id, as fastmcp-tasks does for
    anonymous tasks."""

    identifier = "io.modelcontextprotocol/tasks"

    def __init__(self) -> None:
        self.results: dict[str, Any] = {}
        self.cancelled: list[str] = []

    def methods(self) -> list[MethodBinding]:
        return [
            MethodBinding("tasks/get", TaskParams, self._get),
            MethodBinding("tasks/cancel", TaskParams, self._cancel),
        ]

    def _known(self, task_id: str) -> Any:
        if task_id not in self.results:
            raise MCPError(code=INVALID_PARAMS, message=f"Task {task_id} not found")
        return self.results[task_id]

    async def _get(self, ctx: Any, params: TaskParams) -> dict[str, Any]:
        result = self._known(params.task_id)
        return {"taskId": params.task_id, "status": "completed", "result": result}

    async def _cancel(self, ctx: Any, params: TaskParams) -> dict[str, Any]:
        self._known(params.task_id)
        self.cancelled.append(params.task_id)
        return {}

    async def intercept_tool_call(self, params: Any, context: Any, call_next: Any) -> Any:
        result = await call_next()
        task_id = secrets.token_urlsafe(32)
        self.results[task_id] = result.to_mcp_result().model_dump(mode="json", by_alias=True)
        return CreateTaskResult(task_id=task_id)


def _post(url: str, method: str, params: dict[str, Any], key: str | None) -> Any:
    body = {"jsonrpc": "2.0", "id": 1, "method": method, "params": {**params, "_meta": rpc_meta()}}
    headers = rpc_headers(method, params.get("name") or params.get("taskId"))
    if key is not None:
        headers["X-API-Key"] = key
    return httpx.post(url, json=body, headers=headers, timeout=20)


KEYS: dict[str, dict[str, Any]] = {
    HR_KEY: {"user_id": "hr", "roles": ["hr"]},
    HR2_KEY: {"user_id": "hr2", "roles": ["hr"]},
    INTERN_KEY: {"user_id": "intern"},
}


def _hr_server(audit: Path | None, **settings: Any) -> tuple[FastMCP[Any], Tasks, Any]:
    """A server whose tool `payroll` (tagged `hr`) runs as a task, behind the guard with
    API keys `KEYS`: the server, its tasks and the guard."""
    mcp: FastMCP[Any] = FastMCP("hr")
    tasks = Tasks()
    mcp.add_extension(tasks)

    @mcp.tool(tags={"hr"})
    def payroll(uid: str) -> str:
        return f"SALARY OF {uid}"

    settings.setdefault("telemetry", False)
    guard = create_api_key_middleware(POLICY, api_key_roles=KEYS, audit=audit, **settings)
    mcp.add_middleware(guard)
    return mcp, tasks, guard


def test_only_the_principal_that_started_a_task_reaches_it() -> None:
    mcp, tasks, guard = _hr_server(None)
    with serving_in_thread(mcp.http_app()) as port:
        url = f"http://127.0.0.1:{port}/mcp"
        created = _post(url, "tools/call", {"name": "payroll", "arguments": {"uid": "7"}}, HR_KEY)
        task_id = created.json()["result"]["taskId"]
        refused = _post(url, "tools/call", {"name": "payroll", "arguments": {"uid": "7"}}, None)
        assert "taskId" not in refused.text  # (the call itself was always decided)

        for key in (INTERN_KEY, HR2_KEY, "wrong-key-dddddddddddddddddd", None):
            for method in ("tasks/get", "tasks/cancel"):
                answer = _post(url, method, {"taskId": task_id}, key)
                assert "SALARY" not in answer.text, (key, method)
                # worded as a task that does not exist, whoever asks
                assert answer.json()["error"]["message"] == f"Task {task_id} not found"
                missing = _post(url, method, {"taskId": "nope"}, key).json()
                assert missing["error"]["message"] == "Task nope not found"
        assert tasks.cancelled == []

        mine = _post(url, "tasks/get", {"taskId": task_id}, HR_KEY).json()
        assert mine["result"]["result"]["content"][0]["text"] == "SALARY OF 7"
        assert "result" in _post(url, "tasks/cancel", {"taskId": task_id}, HR_KEY).json()
        assert tasks.cancelled == [task_id]
    guard.close()


def test_refusals_are_recorded_as_the_denials_they_are(tmp_path: Path) -> None:
    store = tmp_path / "audit"
    spans = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(spans))
    registry = CollectorRegistry()
    telemetry = GuardTelemetry(registry=registry, tracer_provider=provider)
    mcp, _, guard = _hr_server(store, telemetry=telemetry)
    with serving_in_thread(mcp.http_app()) as port:
        url = f"http://127.0.0.1:{port}/mcp"
        created = _post(url, "tools/call", {"name": "payroll", "arguments": {"uid": "7"}}, HR_KEY)
        task_id = created.json()["result"]["taskId"]
        for method, key in (
            ("tasks/get", INTERN_KEY),  # another principal
            ("tasks/cancel", "wrong-key-dddddddddddddddddd"),  # refused by authentication
            ("tasks/get", HR_KEY),  # the owner: let through, not recorded
        ):
            _post(url, method, {"taskId": task_id}, key)
        _post(url, "tasks/get", {"taskId": "elsewhere"}, None)  # a task this guard never saw
        # a method the extension does not have reaches the guard too: the client's text
        _post(url, "tasks/<script>" + "x" * 300, {"taskId": task_id}, None)
    guard.close()

    with open_store(store) as db:
        rows = db.sql(
            "SELECT method, action, resource, resource_tags, user_id, authenticated, allowed,"
            " reason FROM decisions ORDER BY ts, decision_id"
        ).fetchall()
    assert rows == [
        ("tools/call", "call", "payroll", ["hr"], "hr", True, True, "rule"),
        ("tasks/get", "call", "payroll", ["hr"], "intern", True, False, "not_task_owner"),
        ("tasks/cancel", "call", "payroll", ["hr"], None, False, False, "invalid_api_key"),
        ("tasks/get", "call", "(task started elsewhere)", [], None, False, False,
         "missing_credentials"),
        ("tasks/*", "call", "payroll", ["hr"], None, False, False, "missing_credentials"),
    ]  # fmt: skip
    # traced and counted as the denials they are
    traced = [
        (s.attributes["mcp.method.name"], s.attributes["mcp_guard.reason"])
        for s in spans.get_finished_spans()
    ]
    assert traced == [(r[0], r[7]) for r in rows]
    denials = registry.get_sample_value(
        "mcpguard_decisions_total",
        {"decision": "deny", "reason": "not_task_owner", "kind": "tool", "action": "call",
         "resource": "payroll", "rule": "", "policy": ""},
    )  # fmt: skip
    assert denials == 1
    # the task id (whoever holds it reaches the task where the guard does not) is in no
    # span or metric of the guard's; nor are the keys, nor the id, in any file of the store
    exposition = generate_latest(registry).decode()
    for span in spans.get_finished_spans():
        assert task_id not in f"{span.name}{dict(span.attributes or {})}{span.events}"
    assert task_id not in exposition
    for path in store.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            for secret in (task_id, HR_KEY, INTERN_KEY, "wrong-key-dddddddddddddddddd"):
                assert secret.encode() not in data, (path, secret)


@pytest.mark.parametrize("refuse", [False, True])
def test_a_task_started_elsewhere_is_refused_only_if_asked(tmp_path: Path, refuse: bool) -> None:
    """Another worker's task (or one from before a restart) is the extension's to answer,
    to any authenticated caller holding its id; `refuse_unknown_tasks` refuses it."""
    store = tmp_path / "audit"
    mcp, tasks, guard = _hr_server(store, refuse_unknown_tasks=refuse)
    tasks.results["elsewhere"] = {"content": [{"type": "text", "text": "SALARY OF 9"}]}
    with serving_in_thread(mcp.http_app()) as port:
        answer = _post(f"http://127.0.0.1:{port}/mcp", "tasks/get", {"taskId": "elsewhere"},
                       INTERN_KEY).json()  # fmt: skip
    guard.close()
    with open_store(store) as db:
        rows = db.sql("SELECT method, resource, user_id, allowed, reason FROM decisions").fetchall()
    if refuse:
        assert answer["error"]["message"] == "Task elsewhere not found"
        assert rows == [("tasks/get", "(task started elsewhere)", "intern", False, "unknown_task")]
    else:
        assert answer["result"]["result"]["content"][0]["text"] == "SALARY OF 9"
        assert rows == []
