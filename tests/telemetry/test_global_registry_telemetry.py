"""A `GuardTelemetry` built on the global registry is the process default (README,
default_telemetry docstring), but only when the registry is left implicit. One built with
`registry=prometheus_client.REGISTRY` spelled out is not adopted, so every later guard with
the default telemetry fails to construct, with an error telling the user to call
`default_telemetry()`, the very call that raised."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

_REPO = Path(__file__).resolve().parents[2]

_SCRIPT = """
from prometheus_client import REGISTRY
from guard import GuardMiddleware, Principal
from guard.telemetry import GuardTelemetry, default_telemetry

mine = GuardTelemetry(registry=REGISTRY)
GuardMiddleware({"name": "p", "rules": []}, principal=Principal("a"), audit=None)
assert default_telemetry() is mine
"""


def test_telemetry_on_the_explicit_global_registry_is_the_default() -> None:
    env = {**os.environ, "PYTHONPATH": str(_REPO)}
    env.pop("MCP_GUARD_TELEMETRY", None)
    result = subprocess.run([sys.executable, "-c", _SCRIPT], capture_output=True, text=True,
                            timeout=60, env=env, check=False)  # fmt: skip
    assert result.returncode == 0, result.stderr.strip().splitlines()[-1]
