"""The README's code runs.

Conventions (in the fenced block's info string):
- ```yaml file=NAME``` (or any language with `file=NAME`) is written to NAME in a temporary
  directory before the section's Python runs;
- ```python``` blocks of one README section run in order in one namespace, in that directory;
- ```python no-run``` is shown to readers but not run (servers that run forever, ...).
Top-level `await` is allowed: each block is compiled with PyCF_ALLOW_TOP_LEVEL_AWAIT.
"""

from __future__ import annotations

import ast
import asyncio
import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parent.parent / "README.md"
_FENCE = re.compile(r"^```([^\n]*)\n(.*?)^```\s*$", re.M | re.S)
_SECTION = re.compile(r"<!-- section:(\w+) -->(.*?)<!-- /section:\1 -->", re.S)


def _blocks(text: str) -> list[tuple[str, str]]:
    return [(m.group(1).strip(), m.group(2)) for m in _FENCE.finditer(text)]


def _sections() -> list[tuple[str, list[tuple[str, str]]]]:
    text = README.read_text()
    return [(m.group(1), _blocks(m.group(2))) for m in _SECTION.finditer(text)]


SECTIONS = [(name, blocks) for name, blocks in _sections() if blocks]


def test_readme_opens_with_two_commands() -> None:
    first = _blocks(README.read_text())[0]
    commands = [ln for ln in first[1].splitlines() if ln.strip() and not ln.startswith("#")]
    assert first[0] == "bash" and len(commands) == 2
    for line in commands:
        script = line.split()[0]
        assert (README.parent / script).exists(), script


@pytest.mark.parametrize("name,blocks", SECTIONS, ids=[s[0] for s in SECTIONS])
def test_readme_section_runs(
    name: str, blocks: list[tuple[str, str]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    for info, body in blocks:
        m = re.search(r"file=(\S+)", info)
        if m:
            target = tmp_path / m.group(1)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(body)
    namespace: dict[str, object] = {"__name__": f"readme_{name}"}
    ran = 0
    for info, body in blocks:
        words = info.split()
        if not words or words[0] != "python" or "no-run" in words or "file=" in info:
            continue
        code = compile(body, f"README[{name}]", "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
        result = eval(code, namespace)
        if asyncio.iscoroutine(result):
            asyncio.run(result)
        ran += 1
    assert ran or any("file=" in info for info, _ in blocks)


def test_the_explain_sample_is_what_explain_prints() -> None:
    """The README's `explain` sample, for `examples/policies/`: its verdict lines and the
    policy set's hash (which had gone stale when the canonical form changed)."""
    from click.testing import CliRunner

    from guard.cli import main

    [sample] = [b for i, b in _blocks(README.read_text()) if b.startswith("DENIED by rule")]
    policies = README.parent / "examples" / "policies"
    args = ["explain", f"{policies}/", "--user", "alice", "--role", "user", "--tool",
            "get_forecast", "--arg", "days=30"]  # fmt: skip
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 2  # denied
    assert result.output.splitlines()[:3] == sample.splitlines()[:3]
