"""Decisions as OpenTelemetry log records: what an OTLP pipeline ships to a log store.

The DuckDB store is the system of record; these records are for fleets that already
collect logs (Loki, ClickHouse, a SIEM) through an OpenTelemetry Collector. Each one
carries the decision's trace and span ids, so a log store links it to its trace. Like the
span, it never carries the call's arguments: redacted arguments stay in the audit store.

```python
from guard.telemetry import GuardTelemetry, configure

configure(service_name="weather-mcp", otlp_endpoint="http://127.0.0.1:4318", logs=True)
telemetry = GuardTelemetry(decision_logs=True)
```
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any, Final

from opentelemetry import _logs
from opentelemetry._logs import LogRecord, SeverityNumber
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags, set_span_in_context

if TYPE_CHECKING:
    from guard.events import DecisionEvent

__all__ = ["EVENT_NAME", "DecisionLogs"]

EVENT_NAME: Final = "mcp_guard.decision"
_SAMPLED: Final = TraceFlags(TraceFlags.SAMPLED)
_UNSAMPLED: Final = TraceFlags(TraceFlags.DEFAULT)


class DecisionLogs:
    """Emits one log record per decision through the OpenTelemetry logs API.

    Args:
        logger_provider: where records go (default: the global one, resolved lazily, so a
            provider configured later is still used).
    """

    def __init__(self, logger_provider: Any = None) -> None:
        self._logger = _logs.get_logger("mcp_guard", logger_provider=logger_provider)

    def emit(
        self,
        trace_id: str,
        span_id: str,
        event: DecisionEvent,
        attributes: Any,
        *,
        sampled: bool = True,
    ) -> None:
        """Emit the record of `event`; `attributes` are the decision's span attributes."""
        decision = event.decision
        resource = event.request.resource
        verdict = "allow" if decision.allowed else "deny"
        attrs = dict(attributes)
        if event.server:
            attrs["mcp_guard.server"] = event.server
        context = None
        if trace_id and span_id:
            # the record names its decision span: a log store links it to the trace
            span_context = SpanContext(
                int(trace_id, 16), int(span_id, 16), False, _SAMPLED if sampled else _UNSAMPLED
            )
            context = set_span_in_context(NonRecordingSpan(span_context))
        record = LogRecord(
            timestamp=time.time_ns(),
            context=context,
            severity_number=SeverityNumber.INFO if decision.allowed else SeverityNumber.WARN,
            severity_text="INFO" if decision.allowed else "WARN",
            body=f"{verdict} {event.request.action} {resource.kind} {_printable(resource.name)}",
            attributes=attrs,
            event_name=EVENT_NAME,
        )
        self._logger.emit(record)


def _printable(name: str) -> str:
    """`name` as a log line may show it. The name of a component the server does not have
    is the caller's text: a newline in it would forge a second line in a log store, an
    escape sequence would rewrite the terminal of whoever tails the logs. Such a name is
    shown escaped, as `repr` does (the attributes keep it as recorded)."""
    return name if name.isprintable() else repr(name)[1:-1]
