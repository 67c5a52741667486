"""`DecisionEvent`: everything known about one decision, handed from the middleware to the
observers (telemetry, audit). Built once per decision; observers read it, never mutate it.
"""

from __future__ import annotations

from dataclasses import dataclass

from guard.policy.model import AccessRequest, Decision

__all__ = ["DecisionEvent"]


@dataclass(slots=True)
class DecisionEvent:
    """One decision and where it happened.

    Attributes:
        decision_id: time-ordered unique id (UUIDv7), shared by span, record and outcome.
        request: the question asked (principal, resource, action, args, clock).
        decision: the live, enforced answer.
        shadow: the draft policy set's answer in shadow mode (never enforced).
        server: the FastMCP server's name.
        transport: `stdio`, `http`, `sse` or `memory`.
        session_id, request_id: MCP session and JSON-RPC request ids, when known.
        method: MCP method, e.g. `tools/call`, `tools/list`.
        trace_id, span_id: hex ids of the decision's span ("" when tracing is off).
        inputs_redacted: the resource fields (`resource_uri`, and `resource` when the name
            is the URI) redacted in `request` before it was observed; the decision saw
            them as sent (recorded with the decision, so replay treats them as unknown).
    """

    decision_id: str
    request: AccessRequest
    decision: Decision
    shadow: Decision | None = None
    server: str | None = None
    transport: str | None = None
    session_id: str | None = None
    request_id: str | None = None
    method: str | None = None
    trace_id: str = ""
    span_id: str = ""
    inputs_redacted: tuple[str, ...] = ()
