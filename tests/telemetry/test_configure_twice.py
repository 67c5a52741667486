"""Calling `configure()` a second time (an app factory run twice, a test suite, a
reload hook) finds its own first provider installed, "joins" it and adds a second OTLP
exporter: every span is exported twice from then on (and with `logs=True`, every decision
log record too). A repeated call with the same endpoint should be idempotent."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from otlp_receiver import otlp_receiver

_REPO = Path(__file__).resolve().parents[2]

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
    with otlp_receiver() as receiver:
        env = {**os.environ, "PYTHONPATH": str(_REPO)}
        result = subprocess.run(
            [sys.executable, "-c", _TWICE, receiver.url],
            capture_output=True, text=True, timeout=90, env=env, check=False,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        receiver.wait_for(lambda s: s.name == "authorize get_weather")
        time.sleep(0.5)
        got = [s for s in receiver.spans if s.name == "authorize get_weather"]
    assert len(got) == 1, f"exported {len(got)} times"
