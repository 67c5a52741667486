"""Fixtures for the policy command line and policy test suites."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "policies"


@pytest.fixture
def examples(tmp_path: Path) -> Path:
    """A private copy of `examples/policies/` (commands may rewrite files)."""
    target = tmp_path / "examples"
    shutil.copytree(EXAMPLES, target)
    return target
