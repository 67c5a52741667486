"""A relative `spill_dir` is taken relative to the directory the log was made in, as the
store path is. Found in review: it was kept relative, so after the process changed
directory (a daemon's `chdir("/")`) spills, adoption and spilled policy texts went to
another directory, where no writer on the store would ever look."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from guard.audit import AuditLog


def test_a_relative_spill_dir_survives_a_change_of_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    here, elsewhere = tmp_path / "here", tmp_path / "elsewhere"
    here.mkdir()
    elsewhere.mkdir()
    monkeypatch.chdir(here)
    log = AuditLog("store", spill_dir="spill")
    os.chdir(elsewhere)  # (monkeypatch restores the first directory)
    assert log._spill.directory == here / "spill"
    log.close()
    assert not (elsewhere / "spill").exists()
