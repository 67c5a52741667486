"""Serving `/metrics`: on the FastMCP HTTP app, or on a port of its own for stdio servers.

Content negotiation follows the scraper's `Accept` header: Prometheus asks for OpenMetrics,
the only format that carries exemplars (the trace ids on the latency histogram). In
multiprocess mode (`PROMETHEUS_MULTIPROC_DIR`), each scrape aggregates every worker's files
through a fresh `MultiProcessCollector`, plus the collectors that live only in the serving
process (audit writer stats).

```python
from fastmcp import FastMCP
from guard.telemetry import mount_metrics

mcp = FastMCP("weather")
mount_metrics(mcp, token="s3cret")  # GET /metrics with `Authorization: Bearer s3cret`
```
"""

from __future__ import annotations

import hmac
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder
from prometheus_client.registry import Collector

from guard.telemetry.metrics import multiprocess_mode

if TYPE_CHECKING:
    from wsgiref.simple_server import WSGIServer

    from prometheus_client.metrics_core import Metric

__all__ = ["mount_metrics", "render", "scrape_registry", "start_metrics_server"]


class _Extra(Collector):
    """Collectors of the serving process that multiprocess files cannot carry."""

    def __init__(self, collectors: Iterable[Collector]) -> None:
        self._collectors = list(collectors)

    def collect(self) -> Iterable[Metric]:
        for collector in self._collectors:
            yield from collector.collect()


def scrape_registry(registry: CollectorRegistry | None = None, *, path: str | None = None) -> Any:
    """What to expose: `registry`, or in multiprocess mode every worker's files aggregated.

    The aggregate re-reads the worker files on every collection, so build it once.

    Args:
        registry: the registry the guard's metrics live on (default: the global one).
        path: multiprocess directory (default: `$PROMETHEUS_MULTIPROC_DIR`); giving it forces
            multiprocess aggregation.
    """
    from prometheus_client import REGISTRY
    from prometheus_client.multiprocess import MultiProcessCollector

    source = REGISTRY if registry is None else registry
    if path is None and not multiprocess_mode():
        return source
    aggregated = CollectorRegistry()
    MultiProcessCollector(aggregated, path=path)  # type: ignore[no-untyped-call]
    local = _local_only(source)
    if local:
        aggregated.register(_Extra(local))
    return aggregated


def _local_only(registry: Any) -> list[Collector]:
    from guard.telemetry.metrics import AuditCollector

    # Metric objects already live in the multiprocess files; only custom collectors remain.
    mapping = getattr(registry, "_collector_to_names", {})
    return [c for c in list(mapping) if isinstance(c, AuditCollector)]


def render(registry: Any, accept: str | None) -> tuple[bytes, str]:
    """Encode `registry` as the scraper asked (`Accept`): OpenMetrics or Prometheus text
    (also for an `Accept` that cannot be read)."""
    try:
        encoder, content_type = choose_encoder(accept or "")
    except Exception:  # prometheus-client raises on `version=x`: not a reason for a 500
        encoder, content_type = choose_encoder("")
    return encoder(registry), content_type


def mount_metrics(
    mcp: Any,
    *,
    registry: CollectorRegistry | None = None,
    token: str | None = None,
    path: str = "/metrics",
) -> None:
    """Serve the guard's metrics at `path` on a FastMCP server's HTTP app.

    Args:
        mcp: the FastMCP server (`streamable-http`/`http`/`sse` transports serve it).
        registry: registry to expose (default: the global one, or the multiprocess files).
        token: when set, scrapes must send `Authorization: Bearer <token>`; others get 401.
            Compared in constant time; never logged.
        path: the route.

    Example:
        ```python
        import os

        from guard.telemetry import mount_metrics

        mount_metrics(mcp, token=os.environ["METRICS_TOKEN"])
        ```
    """
    from starlette.responses import Response

    if token is not None and not token.strip():
        raise ValueError("metrics token must be a non-empty string (or None for no protection)")
    if token is not None and token != token.strip():
        raise ValueError("metrics token has leading or trailing whitespace (read from a file?)")
    expected = token.encode() if token else None
    # A MultiProcessCollector re-reads the worker files on every scrape, so build it once.
    source = scrape_registry(registry)

    @mcp.custom_route(path, methods=["GET"])  # type: ignore[untyped-decorator]
    async def metrics(request: Any) -> Any:
        if expected is not None:
            scheme, _, given = request.headers.get("authorization", "").partition(" ")
            ok = hmac.compare_digest(given.strip().encode(), expected)
            if not ok or scheme.lower() != "bearer":
                return Response(
                    "unauthorized\n",
                    status_code=401,
                    headers={"WWW-Authenticate": 'Bearer realm="metrics"'},
                )
        body, content_type = render(source, request.headers.get("accept"))
        return Response(body, media_type=None, headers={"Content-Type": content_type})


def start_metrics_server(
    port: int = 9464,
    addr: str = "127.0.0.1",
    *,
    registry: CollectorRegistry | None = None,
) -> WSGIServer:
    """Serve `/metrics` on its own port, for servers whose MCP transport is stdio.

    Args:
        port: TCP port; 0 picks a free one (read it back from `server.server_port`).
        addr: interface to bind; loopback by default, since metrics name your tools.
        registry: registry to expose (default: the global one, or the multiprocess files).

    Returns:
        The running server; `server.shutdown()` stops it.

    Example:
        ```python
        server = start_metrics_server(0)
        print(server.server_port)
        ```
    """
    from prometheus_client import start_http_server

    server, _thread = start_http_server(port, addr, registry=scrape_registry(registry))
    server.set_app(_readable_accept(server.get_app()))
    return server


def _readable_accept(app: Any) -> Any:
    """prometheus-client's WSGI `app`, given no `Accept` rather than one its negotiation
    raises on (`version=x`): that answered 500, as `render` explains."""

    def metrics_app(environ: dict[str, Any], start_response: Any) -> Any:
        accept = environ.get("HTTP_ACCEPT")
        if accept:
            try:
                choose_encoder(accept)
            except Exception:
                environ = {k: v for k, v in environ.items() if k != "HTTP_ACCEPT"}
        return app(environ, start_response)

    return metrics_app
