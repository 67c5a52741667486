"""Fixtures for the ops/ checks."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from opsfiles import require_binary


@pytest.fixture
def promtool() -> str:
    return require_binary("promtool")


# The OTLP receiver lives with the telemetry tests; the end-to-end test reuses it.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "telemetry"))
