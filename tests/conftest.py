"""Shared fixtures. Every test gets its own temporary directory and no ambient audit store."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def _isolated_cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Run each test in its own directory so default audit files never collide."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MCP_GUARD_AUDIT", raising=False)
    yield tmp_path
