"""`configure`: an OpenTelemetry SDK exporting spans over OTLP/HTTP, in one call.

The library itself only uses the OpenTelemetry API; this helper is for applications that
have no tracing set up yet. It needs the `otlp` extra (`pip install "mcp-guard[otlp]"`).

```python
from guard.telemetry import configure

configure(service_name="weather-mcp", otlp_endpoint="http://127.0.0.1:4318")
```
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["configure"]


def configure(
    *,
    service_name: str,
    otlp_endpoint: str | None = None,
    headers: Mapping[str, str] | None = None,
    resource_attributes: Mapping[str, Any] | None = None,
    sample_ratio: float = 1.0,
    set_global: bool = True,
    batch: bool = True,
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
        set_global: install the provider globally, so FastMCP's own spans go there too.
        batch: export in the background (`False`: synchronously per span, for scripts).

    Returns:
        The configured `opentelemetry.sdk.trace.TracerProvider`; call `shutdown()` to flush.

    Raises:
        ImportError: the `otlp` extra is not installed.
        ValueError: bad `service_name` or `sample_ratio`.
    """
    if not service_name or not isinstance(service_name, str):
        raise ValueError("service_name must be a non-empty string")
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

    endpoint = otlp_endpoint
    if endpoint is not None and not endpoint.rstrip("/").endswith("/v1/traces"):
        endpoint = endpoint.rstrip("/") + "/v1/traces"
    exporter = OTLPSpanExporter(endpoint=endpoint, headers=dict(headers or {}) or None)
    attributes: dict[str, Any] = {"service.name": service_name, **(resource_attributes or {})}
    provider = TracerProvider(
        resource=Resource.create(attributes),
        sampler=ParentBased(TraceIdRatioBased(sample_ratio)),
    )
    processor = BatchSpanProcessor(exporter) if batch else SimpleSpanProcessor(exporter)
    provider.add_span_processor(processor)
    if set_global:
        trace.set_tracer_provider(provider)
    return provider
