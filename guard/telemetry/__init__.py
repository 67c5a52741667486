"""Telemetry seam: what the middleware tells operators about each decision.

The middleware talks only to the `Telemetry` protocol. `NoTelemetry` is chosen at
construction when telemetry is off, so a disabled guard pays nothing per request.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from guard.events import DecisionEvent

__all__ = ["NoTelemetry", "SpanHandle", "Telemetry"]


class SpanHandle(Protocol):
    trace_id: str  # 32 hex chars, "" when not tracing
    span_id: str  # 16 hex chars, "" when not tracing


class _NoSpan:
    __slots__ = ()
    trace_id = ""
    span_id = ""


_NO_SPAN = _NoSpan()


class Telemetry(Protocol):
    """What the middleware calls; implementations must never raise into the request path."""

    def start_decision(self, method: str, target: str) -> SpanHandle:
        """Open the decision span (child of the current span); called before deciding."""
        ...

    def end_decision(self, handle: SpanHandle, event: DecisionEvent) -> None:
        """Set span attributes/status, end it, and update decision metrics."""
        ...

    def auth_failure(self, method: str, reason: str) -> None: ...

    def policy_reload(self, result: str, policy_set: Any) -> None:
        """`result` is `ok` or `error`; `policy_set` is the set in force afterwards."""
        ...

    def guard_error(self, where: str) -> None:
        """Count a fail-closed denial caused by an exception inside the guard."""
        ...


class NoTelemetry:
    """Telemetry switched off: every call is a no-op."""

    __slots__ = ()

    def start_decision(self, method: str, target: str) -> SpanHandle:
        return _NO_SPAN

    def end_decision(self, handle: SpanHandle, event: DecisionEvent) -> None:
        return None

    def auth_failure(self, method: str, reason: str) -> None:
        return None

    def policy_reload(self, result: str, policy_set: Any) -> None:
        return None

    def guard_error(self, where: str) -> None:
        return None
