"""Shared pieces for the middleware tests: a demo server, a telemetry that remembers, and
the decisions a store holds with their outcomes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastmcp import FastMCP

from guard.audit import open_store
from guard.events import DecisionEvent
from guard.telemetry import NoTelemetry, SpanHandle

# every `user` may do anything: the outcome tests' policy
USERS_ALLOWED = """
name: p
default_effect: deny
rules:
  - name: users
    effect: allow
    agents: {roles: [user]}
    actions: ["*"]
"""

POLICY = """
name: demo
default_effect: deny
rules:
  - name: admin_all
    effect: allow
    agents: {roles: [admin]}
    actions: ["*"]
  - name: user_safe_tools
    effect: allow
    agents: {roles: [user]}
    tools: {tags: [safe]}
    actions: [list, call]
  - name: user_public
    effect: allow
    agents: {roles: [user]}
    resources: {patterns: ["data://public*"]}
    actions: [list, read]
  - name: user_profiles
    effect: allow
    agents: {roles: [user]}
    resource_templates: {names: [profile]}
    actions: [list, read]
  - name: user_greet
    effect: allow
    agents: {roles: [user]}
    prompts: {names: [greet]}
    actions: [list, get]
"""


# a namespace deny rule on whatever is in namespace `hr` (resources and templates too)
NO_HR_ANYTHING = """
name: p
default_effect: allow
rules:
  - name: no_hr
    effect: deny
    conditions: [{field: resource.namespace, operator: equals, value: hr}]
"""

# a namespace deny rule: mounted, proxied and app tools in namespace `hr` must meet it
NO_HR = """
name: p
default_effect: allow
rules:
  - name: no_hr
    effect: deny
    tools: {namespaces: [hr]}
    actions: ["*"]
"""


class Recorder(NoTelemetry):
    """The `Telemetry` protocol, keeping what the middleware told it."""

    __slots__ = ("auth_failures", "errors", "events", "reloads", "started")

    def __init__(self) -> None:
        self.events: list[DecisionEvent] = []
        self.started: list[tuple[str, str]] = []
        self.auth_failures: list[tuple[str, str]] = []
        self.reloads: list[tuple[str, Any]] = []
        self.errors: list[str] = []

    def start_decision(self, method: str, target: str) -> SpanHandle:
        self.started.append((method, target))
        return super().start_decision(method, target)

    def end_decision(self, handle: SpanHandle, event: DecisionEvent) -> None:
        self.events.append(event)

    def auth_failure(self, method: str, reason: str) -> None:
        self.auth_failures.append((method, reason))

    def policy_reload(self, result: str, policy_set: Any) -> None:
        self.reloads.append((result, policy_set))

    def guard_error(self, where: str) -> None:
        self.errors.append(where)


def demo_server(name: str = "demo") -> FastMCP[Any]:
    """Tools, resources, a template and prompts of every access level."""
    mcp: FastMCP[Any] = FastMCP(name)

    @mcp.tool(tags={"safe"})
    def echo(text: str) -> str:
        return f"echo: {text}"

    @mcp.tool(tags={"admin"})
    def drop_table(name: str) -> str:
        return f"dropped {name}"

    @mcp.tool(tags={"safe"})
    def fail() -> str:
        raise ValueError("tool failed")

    @mcp.resource("data://public")
    def public() -> str:
        return "public"

    @mcp.resource("data://secret")
    def secret() -> str:
        return "secret"

    @mcp.resource("users://{uid}/profile", name="profile")
    def profile(uid: str) -> str:
        return f"profile {uid}"

    @mcp.resource("users://{uid}/payroll", name="payroll")
    def payroll(uid: str) -> str:
        return f"payroll {uid}"

    @mcp.prompt
    def greet(name: str) -> str:
        return f"Hello {name}"

    @mcp.prompt
    def admin_prompt(topic: str) -> str:
        return f"admin {topic}"

    @mcp.completion
    def complete(ref: Any, argument: Any, context: Any) -> list[str]:
        return ["alpha", "beta"]

    return mcp


def outcomes(store: Path, method: str) -> list[tuple[Any, ...]]:
    """(resource, allowed, status, error_class) of each decision of `method` in `store`,
    oldest first: `status` None for a decision without an outcome."""
    with open_store(store) as db:
        return db.sql(
            "SELECT resource, allowed, status, error_class FROM decision_log"
            " WHERE method = ? ORDER BY decision_id",
            params=[method],
        ).fetchall()


def disguise_server() -> FastMCP[Any]:
    """Two templates a disguised URI plays against each other: `users://%61dmin/payroll`
    matches `payroll` as sent and names `admin_docs` once decoded."""
    mcp: FastMCP[Any] = FastMCP("s")

    # registered first: FastMCP tries it first, for the text sent as for the URI reached
    @mcp.resource("users://admin/{file}", name="admin_docs")
    def admin_docs(file: str) -> str:
        return f"doc {file}"

    @mcp.resource("users://{uid}/payroll", name="payroll")
    def payroll(uid: str) -> str:
        return f"PAYROLL OF {uid}"

    return mcp
