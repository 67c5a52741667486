"""`verify` sorted every row into chain order in DuckDB, which holds ~1.1 GB per million
rows. Found in review: it always ran with DuckDB's defaults (up to 80% of the machine's
memory, then spilling into `./.tmp` of whatever directory it ran in, a read-only one
failing). Its memory can now be bounded, it spills into a directory of its own under
TMPDIR that it removes, and a sort that does not fit says so instead of "UNREADABLE".
A sound store is now read in one pass without sorting (`test_verify_one_pass.py`): only
a store with something wrong is sorted, to say what."""

from __future__ import annotations

import importlib
import os
from pathlib import Path
from typing import Any

import duckdb
import pytest
from audit_kit import append_decisions
from click.testing import CliRunner

from guard.audit import AuditLog
from guard.audit.verify import MemoryLimitError, verify
from guard.cli import main

# the module, not the function `guard.audit` exports under the same name
verify_module = importlib.import_module("guard.audit.verify")


@pytest.fixture()
def store(tmp_path: Path) -> Path:
    path = tmp_path / "audit"
    log = AuditLog(path)
    append_decisions(log, 0, 3_000)
    log.close()
    return path


def test_the_sort_spills_into_a_directory_of_its_own_removed_afterwards(
    store: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tmpdir = tmp_path / "tmpdir"
    tmpdir.mkdir()
    monkeypatch.setattr("tempfile.tempdir", str(tmpdir))
    workdir = tmp_path / "cwd"
    workdir.mkdir()
    monkeypatch.chdir(workdir)
    seen: list[tuple[str, str]] = []
    real_connect = verify_module.connect

    def connect(**config: Any) -> Any:
        con = real_connect(**config)
        seen.append(
            con.execute(
                "SELECT current_setting('temp_directory'), current_setting('memory_limit')"
            ).fetchone()
        )
        return con

    monkeypatch.setattr(verify_module, "connect", connect)
    report = verify(store, memory_limit="300MB")
    assert report.ok and report.rows == 3_000
    ((spill, limit),) = seen
    assert Path(spill).parent == tmpdir and Path(spill).name.startswith("mcp-guard-verify-")
    assert not Path(spill).exists()  # removed afterwards
    assert limit in ("286.1 MiB", "300.0 MB")  # DuckDB shows it in its own units
    assert os.listdir(workdir) == []  # no `.tmp` where it ran


def test_without_a_limit_duckdb_keeps_its_own(store: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    limits: list[str] = []
    real_connect = verify_module.connect

    def connect(**config: Any) -> Any:
        con = real_connect(**config)
        limits.append(con.execute("SELECT current_setting('memory_limit')").fetchone()[0])
        return con

    monkeypatch.setattr(verify_module, "connect", connect)
    assert verify(store).ok
    default = real_connect().execute("SELECT current_setting('memory_limit')").fetchone()[0]
    assert limits == [default]


def test_a_limit_that_is_no_size_is_refused(store: Path) -> None:
    with pytest.raises(MemoryLimitError, match="'lots'"):
        verify(store, memory_limit="lots")
    out = CliRunner().invoke(main, ["verify", str(store), "--memory-limit", "lots"])
    assert out.exit_code == 1
    assert "--memory-limit" in out.output and "not a size" in out.output


def test_a_sort_that_does_not_fit_says_so(store: Path) -> None:
    ok = CliRunner().invoke(main, ["verify", str(store), "--memory-limit", "8MB"])
    assert ok.exit_code == 0 and "ok: 3000 rows" in ok.output  # one pass: no sort
    (segment,) = sorted((store / "decisions").glob("*.parquet"))
    con = duckdb.connect()
    tmp = segment.with_name("tampered.tmp")
    con.execute(
        "COPY (SELECT * REPLACE (CASE WHEN seq = 5 THEN 'mallory' ELSE user_id END AS user_id)"
        f" FROM read_parquet('{segment}')) TO '{tmp}' (FORMAT parquet)"
    )
    con.close()
    os.replace(tmp, segment)  # edited: the chains are sorted to say where
    out = CliRunner().invoke(main, ["verify", str(store), "--memory-limit", "8MB"])
    assert out.exit_code == 1
    assert "OUT OF MEMORY" in out.output and "--memory-limit 8MB" in out.output
    assert "UNREADABLE" not in out.output
    bad = CliRunner().invoke(main, ["verify", str(store), "--memory-limit", "64MB"])
    assert bad.exit_code == 1 and "seq 5 " in bad.output and "edited" in bad.output
