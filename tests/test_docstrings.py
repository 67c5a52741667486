"""Every code example in the guard's docstrings runs (see `doc_examples.py` for what the
examples may take as given). One process per module: some examples set process-wide state."""

from __future__ import annotations

import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from doc_examples import REPO, examples, modules_with_examples

MODULES = modules_with_examples()


def test_the_docstrings_have_examples_to_run() -> None:
    # the collector finds the fences: if it stopped matching, every test below would pass
    # vacuously
    assert len(MODULES) >= 40
    assert sum(len(examples(m)) for m in MODULES) >= 75


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, subprocess.CompletedProcess[str]]:
    """Every module's examples, run at once (a process each, as many at a time as cores)."""

    def run(module: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, str(REPO / "tests" / "doc_examples.py"), module],
            cwd=tmp_path_factory.mktemp("docs"), capture_output=True, text=True, timeout=300,
            check=False,
        )  # fmt: skip

    with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        return dict(zip(MODULES, pool.map(run, MODULES), strict=True))


@pytest.mark.parametrize("module", MODULES)
def test_docstring_examples_run(
    module: str, runs: dict[str, subprocess.CompletedProcess[str]]
) -> None:
    result = runs[module]
    assert result.returncode == 0, result.stdout + result.stderr


def test_a_broken_example_fails(tmp_path: Path) -> None:
    """The runner reports an example that raises (here: one written into a scratch module)."""
    package = tmp_path / "docpkg"
    package.mkdir()
    (package / "__init__.py").write_text('"""\n```python\nassert 1 + 1 == 3\n```\n"""\n')
    code = (
        "import sys, doc_examples as d; "
        f"d.REPO = __import__('pathlib').Path({str(tmp_path)!r}); "
        "sys.path.insert(0, str(d.REPO)); "
        "d._files = lambda cwd: None; d._namespace = lambda m, c: dict(vars(m)); "
        "sys.exit(d.run('docpkg'))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO / "tests", capture_output=True, text=True,
        timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 1
    assert "docpkg.<module> (line 1) failed" in result.stdout
    assert "AssertionError" in result.stderr


def test_every_given_name_has_a_maker() -> None:
    from doc_examples import GIVEN, _given

    assert set(_given()) == GIVEN
