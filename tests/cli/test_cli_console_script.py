"""The installed `mcp-guard` console script, run as a real subprocess."""

from __future__ import annotations

import shutil
import subprocess
import sysconfig
from pathlib import Path


def _script() -> str:
    found = shutil.which("mcp-guard") or str(Path(sysconfig.get_path("scripts")) / "mcp-guard")
    assert Path(found).exists(), "the mcp-guard console script is not installed: pip install -e ."
    return found


def _run(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [_script(), *map(str, args)], capture_output=True, text=True, timeout=60, check=False
    )


def test_console_script_tests_explains_and_validates(examples: Path) -> None:
    tested = _run("test", examples)
    assert tested.returncode == 0, tested.stdout + tested.stderr
    assert "15 passed, 0 failed" in tested.stdout
    denied = _run(
        "explain",
        examples / "weather.yaml",
        "--user",
        "alice",
        "--role",
        "user",
        "--tool",
        "delete_city",
    )
    assert denied.returncode == 2, denied.stdout + denied.stderr
    assert denied.stdout.startswith("DENIED by rule weather_service/nobody_else_deletes")
    bad = examples / "bad.yaml"
    bad.write_text("name: bad\nrules:\n  - name: r\n    effect: alow\n")
    invalid = _run("validate", bad)
    assert invalid.returncode == 1
    assert invalid.stderr.startswith(f"{bad}:4: rules[0].effect:")
