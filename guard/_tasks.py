"""`GuardMiddleware`'s hook for background tasks (the `io.modelcontextprotocol/tasks`
extension, `fastmcp-tasks`): a task's result and its cancellation belong to the principal
whose call started it.

A tool run as a task answers `tools/call` (decided as any call) with a task id; the result
comes later through `tasks/get`, and `tasks/update` / `tasks/cancel` steer the task. Those
methods are the extension's, and it scopes tasks by FastMCP's own OAuth token only: behind
the guard's API keys or JWTs every task is anonymous, and whoever holds the id (which
SEP-2243 also puts in the `Mcp-Name` header, for intermediaries to route on) reads the
result, with another principal's credentials or none.

A refusal is a decision like any other (recorded, counted, traced) on the tool that
started the task, action `call`, under the extension's method; one about a task started
elsewhere names no tool. A request let through is not recorded: the task's start was.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from fastmcp.server.middleware import CallNext, MiddlewareContext
from mcp.shared.exceptions import MCPError
from mcp_types import INVALID_PARAMS

from guard._deciding import Deciding
from guard._request import EMPTY
from guard.policy.model import Decision, Principal, Reason, Resource

__all__ = ["TaskOwners"]

# ids remembered (oldest forgotten first); a task outlives its extension's TTL here at most
_MAX_TASKS: Final = 65_536
# the extension's methods (fastmcp-tasks 4.1: SEP-2663 removed `tasks/list` and
# `tasks/result`), as recorded and traced; any other (the client's text) as `tasks/*`
_METHODS: Final = frozenset(("tasks/get", "tasks/update", "tasks/cancel"))
# what a refusal about a task started elsewhere (or named by no id) is recorded on
_ELSEWHERE: Final = Resource(kind="tool", name="(task started elsewhere)", found=False)
_NOT_OWNER: Final = Decision(
    allowed=False, reason=Reason.NOT_TASK_OWNER, message="the task is another principal's"
)
_UNKNOWN: Final = Decision(
    allowed=False, reason=Reason.UNKNOWN_TASK, message="the task was not started here"
)


# Result classes that never carry a task id: pydantic models (FastMCP's `ToolResult`)
# without that field nor extra fields. Looking a missing attribute up on one costs ~2-4 us
# (pydantic's `__getattr__` raises and catches inside), a tenth of deciding a call.
_NO_TASK_ID: set[type] = set()


def _never_a_task(cls: type) -> bool:
    fields = getattr(cls, "model_fields", None)
    config = getattr(cls, "model_config", None)
    return (
        isinstance(fields, dict)
        and "task_id" not in fields
        and isinstance(config, dict)
        and config.get("extra") != "allow"
    )


def _owner(principal: Principal) -> tuple[Any, ...]:
    return (principal.auth_method, principal.user_id, principal.authenticated)


class TaskOwners(Deciding):
    """Remembers who started each task, and refuses `tasks/*` to anyone else."""

    _task_owners: dict[str, tuple[tuple[Any, ...], Resource]]
    refuse_unknown_tasks: bool

    def _task_started(self, principal: Principal, tool: Resource, result: Any) -> None:
        """`result` of an allowed `tools/call` of `tool` (as recorded): if it started a task
        (a `CreateTaskResult`, whatever its class), remember `principal` as its owner."""
        cls = type(result)
        if cls in _NO_TASK_ID:
            return
        task_id = getattr(result, "task_id", None)
        if task_id is None and _never_a_task(cls):
            _NO_TASK_ID.add(cls)
        elif isinstance(task_id, str):
            owners = self._task_owners
            if len(owners) >= _MAX_TASKS:
                del owners[next(iter(owners))]
            owners[task_id] = (_owner(principal), tool)

    async def _on_task(self, context: MiddlewareContext[Any], call_next: CallNext[Any, Any]) -> Any:
        """A `tasks/*` request: refused, worded as the extension words a task that does
        not exist (so the refusal does not confirm the id), to a caller refused by
        authentication, and to any principal but the owner of a task started here. A task
        id this process did not see started (another worker's, or from before a restart)
        is the extension's to answer, to authenticated callers, unless
        `refuse_unknown_tasks`. A refusal is recorded and observed; a cancelled request
        is too, and then goes on being cancelled."""
        message = context.message
        task_id = message.get("taskId") if isinstance(message, Mapping) else None
        call = await self._begin(context)
        started = self._task_owners.get(task_id) if isinstance(task_id, str) else None
        if call.denial is None:
            if started is not None and started[0] != _owner(call.principal):
                call.denial = _NOT_OWNER
            elif started is None and self.refuse_unknown_tasks:
                call.denial = _UNKNOWN
        if call.denial is None:
            return await call_next(context)
        method = context.method if context.method in _METHODS else "tasks/*"
        resource = _ELSEWHERE if started is None else started[1]
        self._decide(call, resource, "call", EMPTY, method)  # (raises a cancellation)
        named = f" {task_id}" if isinstance(task_id, str) else ""
        raise MCPError(code=INVALID_PARAMS, message=f"Task{named} not found")
