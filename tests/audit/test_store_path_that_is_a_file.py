"""An `AuditLog` whose store (or spill) path is a file, or lies under one, is refused at
construction. Found in review: `AuditLog("records.duckdb")` where that name was a file
(a DuckDB database from another tool, a typo) logged a warning per flush while every
record waited in memory, and `close()` lost them all: the store and the spill directory
under it could never be created."""

from __future__ import annotations

from pathlib import Path

import pytest

from guard.audit import AuditLog


def test_a_store_path_that_is_a_file_is_refused(tmp_path: Path) -> None:
    store = tmp_path / "records.duckdb"
    store.write_bytes(b"DUCK")
    with pytest.raises(ValueError, match="not a directory") as refused:
        AuditLog(store)
    assert str(store) in str(refused.value)
    assert store.read_bytes() == b"DUCK"  # left as it was


def test_a_store_path_under_a_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    with pytest.raises(ValueError, match="not a directory"):
        AuditLog(tmp_path / "file" / "store")


def test_a_spill_dir_that_is_a_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "spill").write_text("x")
    with pytest.raises(ValueError, match="spill_dir"):
        AuditLog(tmp_path / "store", spill_dir=tmp_path / "spill")


def test_a_missing_store_is_created(tmp_path: Path) -> None:
    AuditLog(tmp_path / "new" / "store").close()
    assert (tmp_path / "new" / "store" / "decisions").is_dir()
