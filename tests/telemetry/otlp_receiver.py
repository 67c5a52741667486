"""A real OTLP/HTTP trace receiver on 127.0.0.1 for tests: decodes the protobuf exports."""

from __future__ import annotations

import gzip
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsServiceRequest,
    ExportLogsServiceResponse,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)


@dataclass
class ReceivedSpan:
    name: str
    trace_id: str
    span_id: str
    parent_span_id: str
    kind: int
    attributes: dict[str, Any]
    status_code: int
    status_message: str
    service: str


@dataclass
class ReceivedLog:
    event_name: str
    body: Any
    severity_text: str
    trace_id: str
    span_id: str
    attributes: dict[str, Any]
    service: str


@dataclass
class Receiver:
    url: str
    spans: list[ReceivedSpan] = field(default_factory=list)
    logs: list[ReceivedLog] = field(default_factory=list)
    bodies: list[bytes] = field(default_factory=list)  # every export request, as received
    requests: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def wait_for(self, predicate: Any, timeout: float = 20.0) -> list[ReceivedSpan]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                found = [s for s in self.spans if predicate(s)]
            if found:
                return found
            time.sleep(0.05)
        raise TimeoutError(f"no matching span among {[s.name for s in self.spans]}")


def _value(v: Any) -> Any:
    which = v.WhichOneof("value")
    if which == "array_value":
        return [_value(x) for x in v.array_value.values]
    return getattr(v, which) if which else None


@contextmanager
def otlp_receiver() -> Iterator[Receiver]:
    """Run the receiver until the block ends; `receiver.url` is the base endpoint."""
    receiver = Receiver(url="")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length", 0)))
            if self.headers.get("content-encoding") == "gzip":
                body = gzip.decompress(body)
            with receiver.lock:
                receiver.bodies.append(body)
            if self.path == "/v1/logs":
                self._logs(body)
                return
            if self.path != "/v1/traces":
                self.send_response(404)
                self.end_headers()
                return
            request = ExportTraceServiceRequest.FromString(body)
            spans = []
            for rs in request.resource_spans:
                resource = {a.key: _value(a.value) for a in rs.resource.attributes}
                for ss in rs.scope_spans:
                    for s in ss.spans:
                        spans.append(
                            ReceivedSpan(
                                name=s.name,
                                trace_id=s.trace_id.hex(),
                                span_id=s.span_id.hex(),
                                parent_span_id=s.parent_span_id.hex(),
                                kind=s.kind,
                                attributes={a.key: _value(a.value) for a in s.attributes},
                                status_code=s.status.code,
                                status_message=s.status.message,
                                service=str(resource.get("service.name", "")),
                            )
                        )
            with receiver.lock:
                receiver.spans.extend(spans)
                receiver.requests += 1
            self._ok(ExportTraceServiceResponse().SerializeToString())

        def _logs(self, body: bytes) -> None:
            request = ExportLogsServiceRequest.FromString(body)
            logs = []
            for rl in request.resource_logs:
                resource = {a.key: _value(a.value) for a in rl.resource.attributes}
                for sl in rl.scope_logs:
                    for r in sl.log_records:
                        logs.append(
                            ReceivedLog(
                                event_name=r.event_name,
                                body=_value(r.body),
                                severity_text=r.severity_text,
                                trace_id=r.trace_id.hex(),
                                span_id=r.span_id.hex(),
                                attributes={a.key: _value(a.value) for a in r.attributes},
                                service=str(resource.get("service.name", "")),
                            )
                        )
            with receiver.lock:
                receiver.logs.extend(logs)
                receiver.requests += 1
            self._ok(ExportLogsServiceResponse().SerializeToString())

        def _ok(self, payload: bytes) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "application/x-protobuf")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, format: str, *args: Any) -> None:
            return None

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    receiver.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
