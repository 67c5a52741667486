"""Whether a call's result started a task is looked up once per result class when the
class can never carry a task id (a pydantic model without that field or extra fields,
as FastMCP's `ToolResult`): a missing attribute on a pydantic model costs microseconds a
call. A class that may carry one on some instances (extra fields allowed) is looked at
every time: its task is its starter's whatever was returned before."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict

from guard import GuardMiddleware, Principal
from guard._tasks import _NO_TASK_ID
from guard.policy.model import Resource

ALICE = Principal("alice", auth_method="api_key")
TOOL = Resource("tool", "report")


class Plain(BaseModel):
    content: str = ""


class Loose(BaseModel):
    model_config = ConfigDict(extra="allow")
    content: str = ""


class Started(BaseModel):
    task_id: str | None = None


def _owners(results: list[Any]) -> dict[str, Any]:
    mw = GuardMiddleware("name: p\nrules: []\n", audit=None, telemetry=False)
    for result in results:
        mw._task_started(ALICE, TOOL, result)
    return dict(mw._task_owners)


def test_a_result_class_without_task_ids_is_looked_at_once() -> None:
    assert _owners([Plain(), Plain()]) == {}
    assert Plain in _NO_TASK_ID


def test_a_class_with_extra_fields_is_looked_at_each_time() -> None:
    owners = _owners([Loose(), Loose(task_id="t-1")])
    assert list(owners) == ["t-1"] and Loose not in _NO_TASK_ID


def test_a_class_with_the_field_is_looked_at_each_time() -> None:
    assert list(_owners([Started(), Started(task_id="t-2")])) == ["t-2"]
    assert Started not in _NO_TASK_ID
