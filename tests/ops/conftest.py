"""Fixtures for the ops/ checks."""

from __future__ import annotations

import shutil

import pytest


@pytest.fixture
def promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        pytest.skip("promtool missing: scripts/test.sh installs Debian's prometheus package")
    return path
