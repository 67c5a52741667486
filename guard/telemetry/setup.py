"""`configure`: an OpenTelemetry SDK exporting spans over OTLP/HTTP, in one call.

The library itself only uses the OpenTelemetry API; this helper is for applications that
have no tracing set up yet. It needs the `otlp` extra (`pip install "mcp-guard[otlp]"`).

```python
from guard.telemetry import configure

configure(service_name="weather-mcp", otlp_endpoint="http://127.0.0.1:4318")
```
"""

from __future__ import annotations

import logging
import numbers
from collections.abc import Mapping
from typing import Any

from guard._settings import flag

__all__ = ["configure"]

logger = logging.getLogger("guard.telemetry")
_EXPORTING: set[tuple[int, str, str | None]] = set()  # (provider, signal, endpoint) wired


def configure(
    *,
    service_name: str,
    otlp_endpoint: str | None = None,
    headers: Mapping[str, str] | None = None,
    resource_attributes: Mapping[str, Any] | None = None,
    sample_ratio: float = 1.0,
    set_global: bool = True,
    batch: bool = True,
    logs: bool = False,
) -> Any:
    """Set up tracing with an OTLP/HTTP exporter and return the `TracerProvider`.

    Args:
        service_name: `service.name` of the exported spans.
        otlp_endpoint: collector base URL (`http://host:4318`) or full `/v1/traces` URL;
            `None` lets the exporter read `OTEL_EXPORTER_OTLP_*` from the environment.
        headers: extra HTTP headers for the exporter (e.g. an ingest token).
        resource_attributes: more resource attributes (`deployment.environment`, ...).
        sample_ratio: fraction of new traces recorded (parent-based, so a sampled caller's
            trace is always followed).
        set_global: install the provider globally, so FastMCP's own spans go there too
            (every exported span has credentials masked: `ScrubbingSpanExporter`).
            If the application already installed an SDK `TracerProvider`, OpenTelemetry
            does not let it be replaced: the exporter joins that provider instead (its
            resource and sampler stay, with a warning), and it is what is returned.
        batch: export in the background (`False`: synchronously per span, for scripts:
            in a server, each request would wait for the exporter, up to its timeout
            when the collector is down).
        logs: also export OpenTelemetry logs over OTLP/HTTP (`/v1/logs`), installing a
            global `LoggerProvider` (needs `set_global`): what `GuardTelemetry(decision_logs=
            True)` emits decision records through (an SDK `LoggerProvider` the application
            installed is joined instead, with a warning, as for spans). It is flushed at
            interpreter exit, or
            by `opentelemetry._logs.get_logger_provider().shutdown()`.

    Returns:
        The configured `opentelemetry.sdk.trace.TracerProvider`; call `shutdown()` to flush.

    Raises:
        ImportError: the `otlp` extra is not installed.
        TypeError: a switch that is not `True` or `False`.
        ValueError: bad `service_name` or `sample_ratio`.
    """
    if not service_name or not isinstance(service_name, str):
        raise ValueError("service_name must be a non-empty string")
    # "no" is truthy: `batch="no"` would batch, `logs="false"` export logs
    set_global, batch = flag("set_global", set_global), flag("batch", batch)
    logs = flag("logs", logs)
    if isinstance(sample_ratio, bool) or not isinstance(sample_ratio, numbers.Real):
        raise TypeError(f"sample_ratio must be a number, not {type(sample_ratio).__name__}")
    if not 0.0 <= sample_ratio <= 1.0:
        raise ValueError(f"sample_ratio must be within [0, 1], got {sample_ratio}")
    try:
        from opentelemetry import trace
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
        from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased
    except ImportError as exc:  # pragma: no cover - depends on the installed extras
        raise ImportError(
            'guard.telemetry.configure needs the otlp extra: pip install "mcp-guard[otlp]"'
        ) from exc

    if logs and not set_global:
        raise ValueError("logs=True installs a global LoggerProvider: it needs set_global=True")
    from guard.telemetry.scrubbing import ScrubbingSpanExporter

    # FastMCP's and the SDK's spans of the same requests carry what callers sent and what
    # tools raised: credentials are masked on the way out (see `scrubbing.py`)
    exporter = ScrubbingSpanExporter(
        OTLPSpanExporter(
            endpoint=_signal_url(otlp_endpoint, "traces"), headers=dict(headers or {}) or None
        )
    )
    attributes: dict[str, Any] = {"service.name": service_name, **(resource_attributes or {})}
    provider = TracerProvider(
        resource=Resource.create(attributes),
        sampler=ParentBased(TraceIdRatioBased(sample_ratio)),
    )
    wired = False  # a provider of its own is new: it has no exporter yet
    if set_global:
        current = trace.get_tracer_provider()
        if isinstance(current, TracerProvider):
            # set_tracer_provider would keep the installed one and drop ours with a log
            # line: the guard's spans would silently never reach this exporter
            logger.warning(
                "a TracerProvider is already installed: the OTLP exporter joins it (its "
                "resource and sampler stay; service_name=%r and sample_ratio are not used)",
                service_name,
            )
            provider = current
        else:
            trace.set_tracer_provider(provider)
        # A second configure() must not export every span twice. Only the global provider
        # is remembered: it lives as long as the process, so its id stays its own (one
        # built with set_global=False may be collected, and the next one built where it was)
        key = (id(provider), "traces", _signal_url(otlp_endpoint, "traces"))
        wired = key in _EXPORTING
        _EXPORTING.add(key)
    if not wired:
        processor = BatchSpanProcessor(exporter) if batch else SimpleSpanProcessor(exporter)
        provider.add_span_processor(processor)
    if logs:
        _configure_logs(provider.resource, otlp_endpoint, headers, batch)
    return provider


def _signal_url(endpoint: str | None, signal: str) -> str | None:
    """`http://host:4318` -> `http://host:4318/v1/<signal>`; `None` defers to the env."""
    if endpoint is None:
        return None
    base = endpoint.rstrip("/")
    for known in ("/v1/traces", "/v1/logs"):
        base = base.removesuffix(known)
    return f"{base}/v1/{signal}"


def _configure_logs(
    resource: Any, endpoint: str | None, headers: Mapping[str, str] | None, batch: bool
) -> None:
    from opentelemetry import _logs
    from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
    from opentelemetry.sdk._logs import LoggerProvider
    from opentelemetry.sdk._logs.export import BatchLogRecordProcessor, SimpleLogRecordProcessor

    exporter = OTLPLogExporter(
        endpoint=_signal_url(endpoint, "logs"), headers=dict(headers or {}) or None
    )
    # (built only when added: a batch processor starts its export thread at once)
    kind = BatchLogRecordProcessor if batch else SimpleLogRecordProcessor
    current = _logs.get_logger_provider()
    if isinstance(current, LoggerProvider):  # installed already: join it, as for spans
        key = (id(current), "logs", _signal_url(endpoint, "logs"))
        if key not in _EXPORTING:
            if not any(k[0] == id(current) for k in _EXPORTING):  # not one configure made
                logger.warning(
                    "a LoggerProvider is already installed: the OTLP log exporter joins it "
                    "(its resource stays; service_name is not used for logs)"
                )
            _EXPORTING.add(key)
            current.add_log_record_processor(kind(exporter))
        return
    provider = LoggerProvider(resource=resource)
    provider.add_log_record_processor(kind(exporter))
    _EXPORTING.add((id(provider), "logs", _signal_url(endpoint, "logs")))
    _logs.set_logger_provider(provider)
