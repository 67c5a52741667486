"""Fixtures for the middleware tests."""

from __future__ import annotations

import pytest
from mw_support import Recorder


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()
