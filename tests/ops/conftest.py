"""Fixtures for the ops/ checks."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest


@pytest.fixture
def promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        pytest.skip("promtool missing: scripts/test.sh installs Debian's prometheus package")
    return path


# The OTLP receiver lives with the telemetry tests; the end-to-end test reuses it.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "telemetry"))
