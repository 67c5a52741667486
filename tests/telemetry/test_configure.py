"""configure(): spans reach a real OTLP/HTTP receiver, decoded from protobuf."""

from __future__ import annotations

import gc
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from otlp_client import CALLER_TOKEN, UPSTREAM_KEY
from otlp_receiver import otlp_receiver

from guard.telemetry import configure

_CLIENT = Path(__file__).with_name("otlp_client.py")
_REPO = Path(__file__).resolve().parents[2]


def test_configure_exports_the_decision_span_and_its_parent() -> None:
    with otlp_receiver() as receiver:
        env = {**os.environ, "PYTHONPATH": str(_REPO), "FASTMCP_SHOW_SERVER_BANNER": "false"}
        result = subprocess.run(
            [sys.executable, str(_CLIENT), receiver.url],
            capture_output=True,
            text=True,
            timeout=90,
            env=env,
            check=False,
        )
        assert result.returncode == 0, result.stderr
        allowed = receiver.wait_for(lambda s: s.name == "authorize get_weather")[0]
        denied = receiver.wait_for(lambda s: s.name == "authorize delete_city")[0]
        # FastMCP's spans of the three requests that carry credentials
        receiver.wait_for(lambda s: s.name.startswith("resources/read") and s.kind == 2)
        spans = {s.span_id: s for s in receiver.spans}
        logs = list(receiver.logs)
        sent = b"".join(receiver.bodies)
    assert allowed.service == "otlp-test"
    assert allowed.kind == 1  # SPAN_KIND_INTERNAL
    assert allowed.attributes["mcp_guard.decision"] == "allow"
    assert allowed.attributes["gen_ai.tool.name"] == "get_weather"
    assert allowed.attributes["enduser.id"] == "alice"
    parent = spans[allowed.parent_span_id]
    assert parent.name == "tools/call get_weather" and parent.kind == 2  # SERVER, FastMCP's
    assert parent.trace_id == allowed.trace_id
    assert denied.status_code == 2 and "delete_city" in denied.status_message  # ERROR
    # a denied call never reaches FastMCP's component path, so its seam span keeps the bare
    # method name; it is still the SERVER span of that request
    denied_parent = spans[denied.parent_span_id]
    assert denied_parent.name.startswith("tools/call") and denied_parent.kind == 2
    assert denied_parent.attributes["mcp.method.name"] == "tools/call"
    # decision records as OTLP logs, each pointing at its decision span
    by_span = {r.span_id: r for r in logs if r.event_name == "mcp_guard.decision"}
    allowed_log, denied_log = by_span[allowed.span_id], by_span[denied.span_id]
    assert allowed_log.trace_id == allowed.trace_id and allowed_log.service == "otlp-test"
    assert allowed_log.body == "allow call tool get_weather"
    assert (
        allowed_log.attributes["mcp_guard.decision_id"]
        == allowed.attributes["mcp_guard.decision_id"]
    )
    assert denied_log.severity_text == "WARN" and denied_log.body.startswith("deny call")
    assert "Oslo" not in repr(logs)  # arguments never leave in a log record
    # Credentials that reached FastMCP's own spans (a tool's error quoting its key, an
    # unknown tool named like a token, a URI's `?token=`) are masked on the way out, and
    # the rest of those spans is as FastMCP made it.
    for secret in (UPSTREAM_KEY, CALLER_TOKEN, CALLER_TOKEN[4:]):
        assert secret.encode() not in sent, secret
    failed = next(s for s in spans.values() if s.name == "tools/call get_forecast" and s.kind == 2)
    assert failed.status_message == (
        "Error calling tool 'get_forecast': upstream refused key <redacted:secret> for Oslo"
    )
    read = next(s for s in spans.values() if "mcp.resource.uri" in s.attributes and s.kind == 2)
    assert read.attributes["mcp.resource.uri"] == "vault://db?token=<redacted:path>"
    assert b"<redacted:secret>" in sent and b"get_forecast" in sent


def test_configure_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError, match="service_name"):
        configure(service_name="")
    with pytest.raises(ValueError, match="sample_ratio"):
        configure(service_name="x", sample_ratio=2.0)


def test_configure_without_global_returns_a_working_provider() -> None:
    with otlp_receiver() as receiver:
        provider = configure(
            service_name="local",
            otlp_endpoint=receiver.url + "/v1/traces",
            set_global=False,
            batch=False,
        )
        provider.get_tracer("t").start_span("hello").end()
        (span,) = receiver.wait_for(lambda s: s.name == "hello")
        provider.shutdown()
    assert span.service == "local"


def test_configure_without_global_exports_from_every_provider_it_returns() -> None:
    """Providers built with set_global=False were remembered by id() to avoid adding an
    exporter twice: once one was collected, a new provider at the same address was taken
    for it and returned with no exporter at all, so its spans went nowhere, silently."""
    with otlp_receiver() as receiver:
        for n in range(60):
            provider = configure(
                service_name="local",
                otlp_endpoint=receiver.url,
                set_global=False,
                batch=False,
            )
            provider.get_tracer("t").start_span(f"span {n}").end()
            provider.shutdown()
            del provider
            gc.collect()  # its address is free for the next one
        got = {s.name for s in receiver.spans}  # exported synchronously (batch=False)
    missing = [n for n in range(60) if f"span {n}" not in got]
    assert not missing, f"providers {missing} exported nothing"


_ALREADY_TRACING = """
import logging, sys
from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from guard.telemetry import configure

logging.basicConfig(level=logging.WARNING)
own = InMemorySpanExporter()
app = TracerProvider(resource=Resource.create({"service.name": "the-app"}))
app.add_span_processor(SimpleSpanProcessor(own))
trace.set_tracer_provider(app)  # the application traces already
provider = configure(service_name="ignored", otlp_endpoint=sys.argv[1], batch=False)
assert provider is app, provider
trace.get_tracer("guard").start_span("authorize get_weather").end()
assert [s.name for s in own.get_finished_spans()] == ["authorize get_weather"]
provider.shutdown()
"""


def _run(script: str, url: str) -> subprocess.CompletedProcess[str]:
    """`script` in a fresh interpreter, exporting to the receiver at `url`."""
    env = {**os.environ, "PYTHONPATH": str(_REPO)}
    result = subprocess.run(
        [sys.executable, "-c", script, url],
        capture_output=True, text=True, timeout=90, env=env, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return result


def test_configure_joins_a_tracer_provider_the_application_installed() -> None:
    """OpenTelemetry keeps the first global provider: configure() used to build a second
    one nobody used, so no span ever reached its exporter, silently."""
    with otlp_receiver() as receiver:
        result = _run(_ALREADY_TRACING, receiver.url)
        (span,) = receiver.wait_for(lambda s: s.name == "authorize get_weather")
    assert span.service == "the-app"  # the application's resource stays
    assert "already installed" in result.stderr


_TWICE = """
import sys
from opentelemetry import trace
from guard.telemetry import configure

configure(service_name="svc", otlp_endpoint=sys.argv[1], batch=False)
configure(service_name="svc", otlp_endpoint=sys.argv[1], batch=False)
trace.get_tracer("guard").start_span("authorize get_weather").end()
trace.get_tracer_provider().shutdown()
"""


def test_configure_called_twice_exports_each_span_once() -> None:
    """An app factory run twice found its own provider installed, joined it and added a
    second exporter: every span (and decision log) was exported twice from then on."""
    with otlp_receiver() as receiver:
        _run(_TWICE, receiver.url)
        receiver.wait_for(lambda s: s.name == "authorize get_weather")
        time.sleep(0.5)  # a second copy would have arrived by now
        got = [s for s in receiver.spans if s.name == "authorize get_weather"]
    assert len(got) == 1, f"exported {len(got)} times"


_LOGS_THRICE = """
import sys, threading
from guard.telemetry import configure

for _ in range(3):
    configure(service_name="svc", otlp_endpoint=sys.argv[1], logs=True)
workers = [t for t in threading.enumerate() if "LogRecordProcessor" in t.name]
print(len(workers))
"""


def test_configure_called_again_starts_no_log_export_thread_it_drops() -> None:
    """A second configure(logs=True) joined the installed logger provider and dropped the
    log processor it had built: each call left one more export thread running."""
    with otlp_receiver() as receiver:
        result = _run(_LOGS_THRICE, receiver.url)
    assert result.stdout.strip() == "1"


_ALREADY_LOGGING = """
import logging, sys
from opentelemetry import _logs
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk.resources import Resource
from guard.telemetry import configure

logging.basicConfig(level=logging.WARNING)
app = LoggerProvider(resource=Resource.create({"service.name": "the-app"}))
_logs.set_logger_provider(app)  # the application exports logs already
configure(service_name="ignored", otlp_endpoint=sys.argv[1], batch=False, logs=True)
assert _logs.get_logger_provider() is app
configure(service_name="ignored", otlp_endpoint=sys.argv[1], batch=False, logs=True)
app.shutdown()
"""


def test_configure_says_it_joins_a_logger_provider_the_application_installed() -> None:
    """The README promises a warning when configure() joins a provider the application
    installed (its resource stays, so `service_name` does not reach the decision logs);
    for a LoggerProvider it joined silently. Said once: a second call adds nothing."""
    with otlp_receiver() as receiver:
        result = _run(_ALREADY_LOGGING, receiver.url)
    assert result.stderr.count("LoggerProvider is already installed") == 1, result.stderr
