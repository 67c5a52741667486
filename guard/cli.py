"""`mcp-guard`: the command line.

Each layer owns its commands in its own module (`guard/policy/cli.py`, `guard/audit/cli.py`,
...); this module only assembles them, importing each lazily so `--help` stays fast.
"""

from __future__ import annotations

import importlib
from typing import Any

import click

# module -> attribute holding a list of click commands
_COMMAND_MODULES = (
    "guard.policy.cli",
    "guard.audit.cli",
    "guard.telemetry.cli",
    "guard.identity.cli",
)


class _Group(click.Group):
    """Usage errors anywhere below (a mistyped command, a bad option of any command) exit
    1, as the README says: exit 2 is `explain`'s "denied", which a script tests for."""

    def make_context(self, *args: Any, **kwargs: Any) -> click.Context:
        try:
            return super().make_context(*args, **kwargs)
        except click.UsageError as exc:
            exc.exit_code = 1
            raise

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except click.UsageError as exc:
            exc.exit_code = 1
            raise


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
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
