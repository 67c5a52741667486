"""`GuardTelemetry`: the real `Telemetry`, turning each decision into a span and metrics.

Spans use the OpenTelemetry API only: with no SDK configured they cost a no-op call, and
the application decides where they go (`guard.telemetry.configure` sets up OTLP in one
call). A decision on a single component (`tools/call`, `resources/read`, `prompts/get`)
gets its own INTERNAL span `authorize {target}`, a child of FastMCP's server span. A list
request (`tools/list`, ...) makes one decision per component; opening a hundred spans to
filter a listing would dwarf the listing itself, so those decisions share FastMCP's
`tools/list` server span (their records carry its ids); with `list_events=True` each
hidden component is noted on it as an `mcp_guard.hidden` event, and in shadow mode each
component the draft answers otherwise as an `mcp_guard.shadow.disagreement` event. List
decisions are counted in `mcpguard_decisions_total` but kept out of the latency histogram.

```python
from prometheus_client import CollectorRegistry
from guard.telemetry import GuardTelemetry

telemetry = GuardTelemetry(registry=CollectorRegistry())
handle = telemetry.start_decision("tools/call", "get_weather")
```
"""

from __future__ import annotations

import contextlib
import time
from bisect import bisect_left
from collections.abc import Callable, Sequence
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any, Final

from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode

from guard._settings import flag
from guard.policy.model import UNKNOWN_COMPONENT, Reason
from guard.telemetry.metrics import DURATION_BUCKETS, GuardMetrics

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

    from guard.events import DecisionEvent
    from guard.telemetry.decision_logs import DecisionLogs
    from guard.telemetry.metrics import AuditStats

__all__ = ["GuardTelemetry", "PolicyReporter"]

_INSTRUMENTATION: Final = "mcp_guard"
_INTERNAL: Final = SpanKind.INTERNAL
# the decisions the latency histogram times: a rule's or the default's (the policy set ran)
_DECIDED: Final = frozenset({Reason.RULE, Reason.DEFAULT})
# How often a latency bucket takes a new exemplar. A bucket exposes only its latest one, and
# scrapes come seconds apart: one per observation (~1.1 us of prometheus-client's checks and
# locking a decision) would almost all be overwritten unseen.
EXEMPLAR_SECONDS: Final = 1.0
# Where the MCP semantic conventions name the component, per resource kind.
_TARGET_ATTRIBUTE: Final = {
    "tool": "gen_ai.tool.name",
    "prompt": "gen_ai.prompt.name",
}


class _Handle:
    """The open decision span and its hex ids (the `SpanHandle` protocol)."""

    __slots__ = ("listing", "sampled", "span", "span_id", "trace_id")

    def __init__(
        self,
        span: Any,
        trace_id: str,
        span_id: str,
        *,
        listing: bool = False,
        sampled: bool = True,
    ) -> None:
        self.span = span
        self.trace_id = trace_id
        self.span_id = span_id
        self.listing = listing
        self.sampled = sampled


_NO_HANDLE: Final = _Handle(None, "", "")
_NO_LIST_HANDLE: Final = _Handle(None, "", "", listing=True)
# the guard whose (re)load `GuardTelemetry.policy_reload` is reporting (None: no guard's)
_REPORTING: ContextVar[PolicyReporter | None] = ContextVar("mcp_guard_reporting", default=None)


class PolicyReporter:
    """The `policy_reload` of one guard on a shared `GuardTelemetry` (see
    `GuardTelemetry.policy_reporter`); `close()` when the guard closes lets go of the set
    it had in force. A closed reporter reports nothing."""

    __slots__ = ("_closed", "_telemetry")

    def __init__(self, telemetry: GuardTelemetry) -> None:
        self._telemetry = telemetry
        self._closed = False

    def __call__(self, result: str, policy_set: Any) -> None:
        if self._closed:
            return
        # Through the telemetry's `policy_reload`, which a subclass may override to hear
        # reloads (the `Telemetry` protocol's hook); the metrics know it as this guard's.
        token = _REPORTING.set(self)
        try:
            self._telemetry.policy_reload(result, policy_set)
        except Exception:
            self._telemetry._failed()
        finally:
            _REPORTING.reset(token)

    @property
    def closed(self) -> bool:
        """Whether the guard closed: `GuardMetrics.policy_reload` then ignores it."""
        return self._closed

    def close(self) -> None:
        """Stop reporting; the set's series goes once no other guard has it in force."""
        self._closed = True
        try:
            self._telemetry.metrics.policy_release(self)
        except Exception:
            self._telemetry._failed()


class GuardTelemetry:
    """Spans and Prometheus metrics for every decision; never raises into a request.

    Args:
        registry: Prometheus registry for the metrics (default: the process-wide one).
        tracer_provider: OpenTelemetry tracer provider (default: the global one, resolved
            lazily so an SDK configured later is still picked up).
        max_resources: distinct component names kept as metric labels before `other`.
        record_principal: put `enduser.id` and roles on spans (on by default; they are
            identities, not secrets, and make a trace answer "who was denied").
        list_events: note each component a listing hides as an `mcp_guard.hidden` event on
            the list's server span (off by default: ~3 us per hidden component with the
            SDK; the decision records already carry the list span's ids).
        decision_logs: also emit each decision as an OpenTelemetry log record (`True`: the
            global logger provider, or pass a `LoggerProvider`); see `configure(logs=True)`.
            Off by default: the audit store is the system of record.

    Example:
        ```python
        from prometheus_client import CollectorRegistry

        telemetry = GuardTelemetry(registry=CollectorRegistry())
        telemetry.auth_failure("api_key", "invalid_key")
        ```
    """

    def __init__(
        self,
        *,
        registry: CollectorRegistry | None = None,
        tracer_provider: Any = None,
        max_resources: int = 500,
        record_principal: bool = True,
        list_events: bool = False,
        decision_logs: Any = False,
    ) -> None:
        # checked before the metrics take their names on the registry
        record_principal = flag("record_principal", record_principal)
        list_events = flag("list_events", list_events)
        if isinstance(decision_logs, str | int) and not isinstance(decision_logs, bool):
            raise TypeError(
                "decision_logs must be True, False or a LoggerProvider, "
                f"not {type(decision_logs).__name__}"
            )
        try:
            self.metrics = GuardMetrics(registry, max_resources=max_resources)
        except ValueError as exc:
            if registry is not None or "Duplicated" not in str(exc):
                raise
            raise ValueError(
                "the global Prometheus registry already holds the guard's metrics: use "
                "guard.telemetry.default_telemetry(), or give this one its own "
                "registry=CollectorRegistry()"
            ) from exc
        self._tracer = trace.get_tracer(_INSTRUMENTATION, tracer_provider=tracer_provider)
        self._record_principal = record_principal
        self._observe = self.metrics.duration.observe
        self._child = self.metrics.decision_child
        self._children = self.metrics.children
        self._count = self.metrics.count
        self._exemplars = not self.metrics.multiprocess  # unsupported in multiprocess mode
        # when each latency bucket (by `DURATION_BUCKETS` position; +Inf last) next takes an
        # exemplar (monotonic seconds)
        self._exemplar_due = [0.0] * (len(DURATION_BUCKETS) + 1)
        self._list_events = list_events
        self._logs: DecisionLogs | None = None
        if decision_logs is not False and decision_logs is not None:
            from guard.telemetry.decision_logs import DecisionLogs

            provider = None if decision_logs is True else decision_logs
            self._logs = DecisionLogs(provider)
        from prometheus_client import REGISTRY

        if registry is None or registry is REGISTRY:
            # the one on the global registry is the default the middleware falls back to
            from guard.telemetry import _adopt_default

            _adopt_default(self)

    @property
    def registry(self) -> CollectorRegistry:
        """The Prometheus registry holding this telemetry's metrics."""
        return self.metrics.registry

    def add_audit_source(self, stats: AuditStats) -> None:
        """Report an audit writer's health: `stats` is `AuditLog.stats`, read at scrape time."""
        self.metrics.audit.add(stats)

    # -- the Telemetry protocol -------------------------------------------------------

    def start_decision(self, method: str, target: str) -> _Handle:
        """Open the decision span (or, for a list, point at the list's server span)."""
        try:
            if method.endswith("/list"):
                return self._list_handle(trace.get_current_span())
            span = self._tracer.start_span(f"authorize {target}", kind=_INTERNAL)
            ctx = span.get_span_context()
            if not ctx.is_valid:
                return _NO_HANDLE
            return _Handle(
                span,
                format(ctx.trace_id, "032x"),
                format(ctx.span_id, "016x"),
                sampled=ctx.trace_flags.sampled,
            )
        except Exception:
            self._failed()
            return _NO_HANDLE

    def _list_handle(self, span: Any) -> _Handle:
        # A listing's components are decided under its server span: one handle for all.
        ctx = span.get_span_context()
        if not ctx.is_valid:
            return _NO_LIST_HANDLE
        return _Handle(
            span if span.is_recording() else None,
            format(ctx.trace_id, "032x"),
            format(ctx.span_id, "016x"),
            listing=True,
            sampled=ctx.trace_flags.sampled,
        )

    def end_decision(self, handle: Any, event: DecisionEvent) -> None:
        """Count the decision, observe its latency (exemplar: trace id), end the span."""
        try:
            decision = event.decision
            allowed = decision.allowed
            key = _counter_key(event)
            child = self._children.get(key)
            if child is None:
                child = self._child(*key)
            self._count(child)
            if handle.listing:
                # The histogram is for single-component decisions: a listing would add one
                # observation per component and drown them.
                span = handle.span
                if span is not None:
                    if not allowed and self._list_events:
                        span.add_event("mcp_guard.hidden", _hidden_attributes(event))
                    shadow = event.shadow
                    if shadow is not None and shadow.allowed != allowed:
                        span.add_event("mcp_guard.shadow.disagreement", _disagreement(event))
                if self._logs is not None:
                    self._logs.emit(
                        handle.trace_id,
                        handle.span_id,
                        event,
                        self._attributes(event),
                        sampled=handle.sampled,
                    )
                return
            trace_id = handle.trace_id
            if decision.reason not in _DECIDED:
                pass  # refused (authentication, guard error) or cancelled: no latency
            elif trace_id and self._exemplars and handle.sampled:  # no link to a dropped trace
                seconds = decision.eval_us / 1e6
                bucket = bisect_left(DURATION_BUCKETS, seconds)  # (the bucket observe finds)
                now = time.monotonic()
                if now >= self._exemplar_due[bucket]:
                    self._exemplar_due[bucket] = now + EXEMPLAR_SECONDS
                    self._observe(seconds, {"trace_id": trace_id})
                else:
                    self._observe(seconds)
            else:
                self._observe(decision.eval_us / 1e6)
            span = handle.span
            attributes = None
            if span is not None:
                attributes = self._attributes(event)
                span.set_attributes(attributes)
                if not allowed:
                    span.set_status(Status(StatusCode.ERROR, _denial_text(event)))
                span.end()
            if self._logs is not None:
                self._logs.emit(
                    handle.trace_id,
                    handle.span_id,
                    event,
                    attributes or self._attributes(event),
                    sampled=handle.sampled,
                )
        except Exception:
            self._failed()

    def prepare_listing(self, events: Sequence[DecisionEvent]) -> Callable[[Any, str], None] | None:
        """What `end_decision` does for each of a listing's `events` under a listing handle,
        made ready to do at once, and again for the same answers: `observe(handle,
        listing_id)` counts them and adds the span events of hidden components and of
        those the shadow draft answers otherwise (their decision ids from `listing_id`),
        in the order of the events. None when that is not all it would do (decision logs
        are on: each record is emitted as it is; or a subclass observes decisions its own
        way)."""
        if self._logs is not None or not self._observes_as_prepared():
            return None
        children = []
        marks = []  # (position, span event name, attributes)
        known, child_of, list_events = self._children, self._child, self._list_events
        for n, event in enumerate(events, 1):
            key = _counter_key(event)
            child = known.get(key)
            children.append(child if child is not None else child_of(*key))
            allowed = event.decision.allowed
            if not allowed and list_events:
                marks.append((n, "mcp_guard.hidden", _hidden_attributes(event)))
            shadow = event.shadow
            if shadow is not None and shadow.allowed != allowed:
                marks.append((n, "mcp_guard.shadow.disagreement", _disagreement(event)))
        failed = self._failed
        count_all = self.metrics.count_all

        def observe(handle: Any, listing_id: str) -> None:
            try:
                count_all(children)
                span = handle.span
                if span is not None:
                    for n, name, attributes in marks:
                        span.add_event(
                            name, {**attributes, "mcp_guard.decision_id": f"{listing_id}.{n}"}
                        )
            except Exception:
                failed()

        return observe

    def _observes_as_prepared(self) -> bool:
        """Whether `end_decision` is the one `prepare_listing` stands for: not one a subclass
        (or the instance) put in its place, which may do more with each decision."""
        if "end_decision" in getattr(self, "__dict__", ()):
            return False
        mro = type(self).__mro__
        ending = next(c for c in mro if "end_decision" in c.__dict__)
        preparing = next(c for c in mro if "prepare_listing" in c.__dict__)
        return issubclass(preparing, ending)

    def _failed(self) -> None:
        """A span, log or metric could not be made: the decision stands (telemetry never
        decides a request), and the failure is counted where a scrape shows it."""
        with contextlib.suppress(Exception):  # the metrics themselves may be what broke
            self.metrics.guard_error("telemetry")

    def auth_failure(self, method: str, reason: str) -> None:
        try:
            self.metrics.auth_failure(method, reason)
        except Exception:
            self._failed()

    def policy_reload(self, result: str, policy_set: Any) -> None:
        try:
            # reported for the guard whose `policy_reporter` is calling, if any
            self.metrics.policy_reload(result, policy_set, _REPORTING.get())
        except Exception:
            self._failed()

    def policy_reporter(self) -> PolicyReporter:
        """A `policy_reload` for one guard. Guards sharing this telemetry (the default one,
        say) each keep the `mcpguard_policy_info` series of the set they have in force; a
        reload replaces only the reloading guard's. The middleware takes one of its own,
        and closes it when it closes. Each report goes through `policy_reload`, so a
        subclass that overrides it hears every guard's (re)loads.

        Example:
            ```python
            from prometheus_client import CollectorRegistry

            telemetry = GuardTelemetry(registry=CollectorRegistry())
            first, second = telemetry.policy_reporter(), telemetry.policy_reporter()
            first("ok", policies)
            second("ok", policies)  # both in force: one series, kept until both move on
            first.close()  # its guard closed: the series stays while second has it
            ```
        """
        return PolicyReporter(self)

    def guard_error(self, where: str) -> None:
        try:
            self.metrics.guard_error(where)
        except Exception:
            self._failed()

    # -- span attributes ----------------------------------------------------------------

    def _attributes(self, event: DecisionEvent) -> dict[str, Any]:
        decision = event.decision
        request = event.request
        resource = request.resource
        attrs: dict[str, Any] = {
            "mcp.method.name": event.method or request.method or "",
            "mcp_guard.decision": "allow" if decision.allowed else "deny",
            "mcp_guard.reason": decision.reason,
            "mcp_guard.decision_id": event.decision_id,
            "mcp_guard.policy_hash": decision.policy_hash,
            "mcp_guard.action": request.action,
            "mcp_guard.resource.kind": resource.kind,
            "mcp_guard.eval_us": decision.eval_us,
        }
        name_key = _TARGET_ATTRIBUTE.get(resource.kind)
        if name_key is not None:
            attrs[name_key] = resource.name
        else:
            attrs["mcp.resource.uri"] = resource.uri or resource.name
        if decision.rule:
            attrs["mcp_guard.rule"] = decision.rule
        if decision.policy:
            attrs["mcp_guard.policy"] = decision.policy
        if event.shadow is not None:
            attrs["mcp_guard.shadow.decision"] = "allow" if event.shadow.allowed else "deny"
            if event.shadow.rule:
                attrs["mcp_guard.shadow.rule"] = event.shadow.rule
        if event.session_id:
            attrs["mcp.session.id"] = event.session_id
        if event.request_id is not None and event.request_id != "":
            attrs["jsonrpc.request.id"] = str(event.request_id)
        if event.transport:
            attrs["mcp_guard.transport"] = event.transport
        principal = request.principal
        if principal.auth_method:
            attrs["mcp_guard.auth_method"] = principal.auth_method
        if self._record_principal:
            if principal.user_id:
                attrs["enduser.id"] = principal.user_id
            if principal.roles:
                attrs["mcp_guard.roles"] = list(principal.roles)
            if principal.agent_id:
                attrs["gen_ai.agent.id"] = principal.agent_id
        return attrs


def _denial_text(event: DecisionEvent) -> str:
    d = event.decision
    where = f"rule {d.rule!r} of policy {d.policy!r}" if d.rule else f"reason {d.reason!r}"
    if d.reason == "default":
        where = "no rule matched, default effect" + (f" of policy {d.policy!r}" if d.policy else "")
    resource = event.request.resource
    return f"access denied to {resource.kind} {resource.name!r}: {where}"


def _counter_key(event: DecisionEvent) -> tuple[Any, ...]:
    """The labels of `event`'s `mcpguard_decisions_total` child, as `decision_child` takes
    them (and keys its cache)."""
    decision, request = event.decision, event.request
    resource = request.resource
    return (
        decision.allowed, decision.reason, resource.kind, request.action,
        resource.name if resource.found else UNKNOWN_COMPONENT, decision.rule or "",
        decision.policy or "",
    )  # fmt: skip


def _disagreement(event: DecisionEvent) -> dict[str, Any]:
    """A listed component the shadow (draft) policy answers otherwise than the live one."""
    shadow = event.shadow
    attrs = _hidden_attributes(event)
    attrs["mcp_guard.decision"] = "allow" if event.decision.allowed else "deny"
    if shadow is not None:
        attrs["mcp_guard.shadow.decision"] = "allow" if shadow.allowed else "deny"
        if shadow.rule:
            attrs["mcp_guard.shadow.rule"] = shadow.rule
    return attrs


def _hidden_attributes(event: DecisionEvent) -> dict[str, Any]:
    d = event.decision
    resource = event.request.resource
    attrs: dict[str, Any] = {
        "mcp_guard.resource.kind": resource.kind,
        "mcp_guard.resource.name": resource.name,
        "mcp_guard.reason": d.reason,
        "mcp_guard.decision_id": event.decision_id,
    }
    if d.rule:
        attrs["mcp_guard.rule"] = d.rule
    return attrs
