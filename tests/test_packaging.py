"""What `pyproject.toml` declares is what an installed guard needs (found in review).

The suite runs in one environment, with the newest versions of every dependency; a user's
environment may hold any version the declared ranges allow. These tests pin down the
floors that the code or the README needs and an older release lacks.
"""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.version import Version

REPO = Path(__file__).resolve().parent.parent


def _floor(name: str) -> Version:
    """The lowest version of `name` the declared dependencies let in."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    for text in project["dependencies"]:
        req = Requirement(text)
        if req.name == name:
            floors = [Version(s.version) for s in req.specifier if s.operator in (">=", "==")]
            assert floors, f"{text}: no lower bound"
            return max(floors)
    raise AssertionError(f"{name} is not a declared dependency")


def test_duckdb_floor_reads_record_times_without_pytz(tmp_path: Path) -> None:
    """DuckDB before 2.0.1 hands a TIMESTAMPTZ to Python through `pytz`, which nothing
    declares: with `duckdb>=1.1`, reading `ts` or `request_time` from `open_store` (the
    README's replay example does) raised "Required module 'pytz' failed to import". 2.0.1
    uses `zoneinfo`; the installed one must too, with `pytz` unimportable."""
    assert _floor("duckdb") >= Version("2.0.1")
    code = (
        "import sys; sys.modules['pytz'] = None\n"
        "from guard.audit import open_store\n"
        "with open_store(sys.argv[1]) as store:\n"
        "    (ts,) = store.execute(\"SELECT TIMESTAMPTZ '2025-01-02 03:04:05+00'\").fetchone()\n"
        "assert ts.utcoffset().total_seconds() == 0, ts\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path / "store")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr


def test_one_version_number() -> None:
    """`guard.__version__` is what the package metadata and `mcp-guard --version` say: the
    version lives in one place (hatch reads it from `guard/__init__.py`), not in two that a
    release bumps one of."""
    from importlib.metadata import version

    from click.testing import CliRunner

    import guard
    from guard.cli import main

    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    assert "version" not in project and "version" in project["dynamic"]
    assert version("mcp-guard") == guard.__version__
    shown = CliRunner().invoke(main, ["--version"])
    assert shown.exit_code == 0 and shown.output.split()[-1] == guard.__version__
