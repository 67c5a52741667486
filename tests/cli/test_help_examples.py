"""Every `mcp-guard` command's `--help` shows an example, and every example runs: each line
is run by bash with the installed console script, in a directory holding what the
examples name (`policies/`, `examples/`, `base.yaml`, `team.yaml`, `request.json`, a
decision store at the default path with an allowed and a denied call, `$KEY`)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sysconfig
from pathlib import Path

import click
import pytest

from guard.audit import AuditLog
from guard.cli import main
from guard.events import DecisionEvent
from guard.policy import AccessRequest, Principal, Resource, load_policies

REPO = Path(__file__).resolve().parents[2]
# examples whose documented exit status is not 0
EXIT_STATUS = {
    "mcp-guard format policies/ --check": 1,  # the example policies keep their comments
}
TEAM = """\
name: team
default_effect: deny
rules:
- name: team_reads
  effect: allow
  agents:
    roles:
    - team
  tools:
    patterns:
    - get_*
  actions:
  - call
"""


def _leaves(group: click.Group, prefix: str = "mcp-guard") -> dict[str, click.Command]:
    out: dict[str, click.Command] = {}
    for name, command in sorted(group.commands.items()):
        if isinstance(command, click.Group):
            out.update(_leaves(command, f"{prefix} {name}"))
        else:
            out[f"{prefix} {name}"] = command
    return out


COMMANDS = _leaves(main)


def _examples(path: str, command: click.Command) -> list[str]:
    with click.Context(command, info_name=path) as ctx:
        text = command.get_help(ctx)
    block = re.search(r"Example:\n((?:[ \t]+\S.*\n?)+)", text)
    return [line.strip() for line in block.group(1).splitlines()] if block else []


EXAMPLES = [(path, line) for path, cmd in COMMANDS.items() for line in _examples(path, cmd)]


def test_every_command_shows_an_example() -> None:
    assert len(COMMANDS) >= 12  # the walk found the commands, groups included
    missing = [path for path, cmd in COMMANDS.items() if not _examples(path, cmd)]
    assert missing == []
    for path, line in EXAMPLES:
        assert path in line, f"{path}'s example runs something else: {line}"


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("help-examples")
    shutil.copytree(REPO / "examples", root / "examples")
    shutil.copytree(REPO / "examples" / "policies", root / "policies")
    shutil.copy(REPO / "examples" / "policies" / "weather.yaml", root / "base.yaml")
    (root / "team.yaml").write_text(TEAM)
    request = {"principal": {"user_id": "alice", "roles": ["user"]}, "tool": "get_weather"}
    (root / "request.json").write_text(json.dumps({**request, "args": {"city": "Paris"}}))
    policies = load_policies(root / "policies" / "weather.yaml")
    log = AuditLog(root / "mcp-guard-audit.duckdb")
    for n, tool in enumerate(("get_weather", "delete_city")):
        request = AccessRequest(Principal("alice", ("user",)), Resource("tool", tool), "call")
        log.append(DecisionEvent(f"d{n}", request, policies.decide(request), method="tools/call"))
    log.close()
    return root


@pytest.mark.parametrize("line", [line for _, line in EXAMPLES])
def test_help_example_runs(line: str, workdir: Path, tmp_path: Path) -> None:
    # a private copy: examples write files (create, convert, format --write, key new)
    cwd = tmp_path / "cwd"
    shutil.copytree(workdir, cwd)
    scripts = sysconfig.get_path("scripts")
    assert Path(scripts, "mcp-guard").exists(), "the console script is not installed"
    env = {**os.environ, "PATH": f"{scripts}{os.pathsep}{os.environ['PATH']}",
           "KEY": "mcpg_help-example-key-0123456789"}  # fmt: skip
    result = subprocess.run(
        ["bash", "-c", f"set -o pipefail; {line}"], cwd=cwd, env=env, capture_output=True,
        text=True, timeout=120, check=False,
    )  # fmt: skip
    expected = EXIT_STATUS.get(line, 0)
    assert result.returncode == expected, f"{line}\n{result.stdout}\n{result.stderr}"


@pytest.mark.parametrize("path", sorted(COMMANDS))
def test_every_option_says_what_it_does(path: str) -> None:
    """`mcp-guard tail --help` listed `-n INTEGER RANGE` and nothing else: every option's
    line in `--help` says what it is for."""
    bare = [o.opts for o in COMMANDS[path].params if isinstance(o, click.Option) and not o.help]
    assert not bare, f"{path}: options without help: {bare}"
