"""Telemetry seam: what the middleware tells operators about each decision.

The middleware talks only to the `Telemetry` protocol. `NoTelemetry` is chosen at
construction when telemetry is off, so a disabled guard pays nothing per request;
`GuardTelemetry` (spans through the OpenTelemetry API, Prometheus metrics) is the real one.
Importing this package stays light: the implementations load on first use.

```python
from guard.telemetry import GuardTelemetry, configure, mount_metrics

configure(service_name="weather-mcp", otlp_endpoint="http://127.0.0.1:4318")
mount_metrics(mcp)  # GET /metrics on the FastMCP HTTP app
```
"""

from __future__ import annotations

import importlib
import os
import threading
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from guard.events import DecisionEvent
    from guard.telemetry.emitter import GuardTelemetry
    from guard.telemetry.exposition import mount_metrics, scrape_registry, start_metrics_server
    from guard.telemetry.scrubbing import ScrubbingSpanExporter
    from guard.telemetry.setup import configure

__all__ = [
    "GuardTelemetry",
    "NoTelemetry",
    "ScrubbingSpanExporter",
    "SpanHandle",
    "Telemetry",
    "configure",
    "default_telemetry",
    "mount_metrics",
    "scrape_registry",
    "start_metrics_server",
]

# public name -> module that defines it (loaded on first use)
_EXPORTS: dict[str, str] = {
    "GuardTelemetry": "guard.telemetry.emitter",
    "ScrubbingSpanExporter": "guard.telemetry.scrubbing",
    "configure": "guard.telemetry.setup",
    "mount_metrics": "guard.telemetry.exposition",
    "scrape_registry": "guard.telemetry.exposition",
    "start_metrics_server": "guard.telemetry.exposition",
}


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'guard.telemetry' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


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
        """Open the decision span (child of the current span); called before deciding.
        A listing (`method` ending in `/list`) calls it once, with `target` empty, and
        passes the handle to `end_decision` for each of its components."""
        ...

    def end_decision(self, handle: SpanHandle, event: DecisionEvent) -> None:
        """Set span attributes/status, end it, and update decision metrics."""
        ...

    def auth_failure(self, method: str, reason: str) -> None: ...

    def policy_reload(self, result: str, policy_set: Any) -> None:
        """`result` is `ok` or `error` (the live set), or `shadow_error` (a draft decided in
        shadow did not load); `policy_set` is the live set in force afterwards (None when
        unchanged)."""
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


_default: Telemetry | None = None
_default_lock = threading.RLock()  # reentrant: the new GuardTelemetry adopts itself


def _default_lock_after_fork() -> None:
    """A lock of the child's own: a parent's thread building the default at the fork held
    it, and no thread is left in the child to let go of it."""
    global _default_lock
    _default_lock = threading.RLock()


os.register_at_fork(after_in_child=_default_lock_after_fork)
_OFF = frozenset({"0", "off", "false", "no", "none"})


def default_telemetry() -> Telemetry:
    """The process-wide telemetry the middleware uses when given `telemetry=None`.

    One `GuardTelemetry` on prometheus-client's global registry (metrics can be registered
    there only once, so every guarded server in the process shares it): the first one built
    there, by this function or by `GuardTelemetry()` with options of your choice. Setting
    `MCP_GUARD_TELEMETRY=off` returns `NoTelemetry()` instead.

    Example:
        ```python
        telemetry = default_telemetry()
        assert default_telemetry() is telemetry
        ```
    """
    if os.environ.get("MCP_GUARD_TELEMETRY", "").strip().lower() in _OFF:
        return NoTelemetry()
    if _default is None:
        with _default_lock:
            if _default is None:
                from guard.telemetry.emitter import GuardTelemetry

                GuardTelemetry()  # adopts itself as the default
    if _default is None:  # pragma: no cover - GuardTelemetry() always adopts itself
        raise RuntimeError("no default telemetry was adopted")
    return _default


def _adopt_default(telemetry: Telemetry) -> None:
    """Called by a `GuardTelemetry` built on the global registry: it is the default."""
    global _default
    with _default_lock:
        if _default is None:
            _default = telemetry
