"""`mcp-guard`: the command line.

Each layer owns its commands in its own module (`guard/policy/cli.py`, `guard/audit/cli.py`,
...); this module only assembles them, importing each lazily so `--help` stays fast.
"""

from __future__ import annotations

import importlib

import click

# module -> attribute holding a list of click commands
_COMMAND_MODULES = (
    "guard.policy.cli",
    "guard.audit.cli",
    "guard.telemetry.cli",
    "guard.identity.cli",
)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="mcp-guard", prog_name="mcp-guard")
def main() -> None:
    """MCP Guard: authorization, audit and governance for FastMCP servers."""


def _register() -> None:
    for name in _COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name == name:  # that layer has no commands (yet)
                continue
            raise
        for command in getattr(module, "COMMANDS", ()):
            main.add_command(command)


_register()

if __name__ == "__main__":
    main()
