"""What the policy commands share: options, loading with every problem reported, output."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import click

from guard.errors import PolicyError, PolicyProblem

if TYPE_CHECKING:
    from guard.policy.policyset import PolicySet
    from guard.policy.spec import PolicySpec

# as `load_policies` reads a directory: its own files, not subdirectories
POLICY_SUFFIXES = (".yaml", ".yml")
FORMAT = click.option(
    "--format",
    "output_format",
    type=click.Choice(["text", "json"]),
    default="text",
    show_default=True,
    help="Output for people or for machines.",
)


def import_modules(ctx: click.Context, param: click.Parameter, values: tuple[str, ...]) -> None:
    """Import the user's modules (custom conditions register themselves on import)."""
    import importlib
    import importlib.util

    for value in values:
        try:
            if value.endswith(".py"):
                spec = importlib.util.spec_from_file_location(Path(value).stem, value)
                if spec is None or spec.loader is None:
                    raise ImportError(f"cannot import {value}")
                module = importlib.util.module_from_spec(spec)
                spec.loader.exec_module(module)
            else:
                if "" not in sys.path:  # like `python -m`: modules of the working directory
                    sys.path.insert(0, "")
                importlib.import_module(value)
        except Exception as exc:  # anything the user's module raises is a bad option
            raise click.BadParameter(f"{value}: {type(exc).__name__}: {exc}", ctx, param) from None


IMPORT = click.option(
    "--import",
    "imports",
    multiple=True,
    metavar="MODULE",
    expose_value=False,
    callback=import_modules,
    help="Python module or .py file to import first, e.g. one registering custom conditions.",
)


class Command(click.Command):
    """A command whose usage errors exit 1, keeping exit 2 free to mean "denied".

    With `--format json`, every error (click's own usage errors included) is printed as the
    JSON document invalid policies get, so stdout always parses for the script reading it.
    """

    def make_context(
        self,
        info_name: str | None,
        args: list[str],
        parent: click.Context | None = None,
        **extra: Any,
    ) -> click.Context:
        words = list(args)  # click's parser consumes the list it parses
        try:
            return super().make_context(info_name, args, parent, **extra)
        except click.ClickException as exc:
            # the options did not parse: read --format from the words themselves
            self._fail(exc, self._has_format() and _asks_for_json(words))

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except click.ClickException as exc:
            self._fail(exc, ctx.params.get("output_format") == "json")

    def _has_format(self) -> bool:
        return any(p.name == "output_format" for p in self.params)

    @staticmethod
    def _fail(exc: click.ClickException, as_json: bool) -> NoReturn:
        if isinstance(exc, click.UsageError):
            exc.exit_code = 1
        if not as_json:
            raise exc
        field = None  # the option or argument at fault, as the command line spells it
        if isinstance(exc, click.BadParameter) and isinstance(exc.param, click.Option):
            field = next((o for o in exc.param.opts if o.startswith("--")), exc.param.opts[0])
        elif isinstance(exc, click.BadParameter) and exc.param is not None:
            field = exc.param.human_readable_name  # an argument: its metavar, `PATH...`
        elif isinstance(exc, click.BadOptionUsage | click.NoSuchOption):
            field = exc.option_name
        code = "usage" if isinstance(exc, click.UsageError) else "error"
        problem = PolicyProblem(exc.format_message(), "<command line>", field=field, code=code)
        emit_json({"valid": False, "problems": [problem_dict(problem)]})
        raise click.exceptions.Exit(1) from None


def _asks_for_json(args: Sequence[str]) -> bool:
    """Whether the command line says `--format json` (the last `--format` wins)."""
    value = None
    for i, word in enumerate(args):
        if word == "--":
            break
        if word == "--format" and i + 1 < len(args):
            value = args[i + 1]
        elif word.startswith("--format="):
            value = word.partition("=")[2]
    return value == "json"


def emit_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, default=str))


def problem_dict(p: PolicyProblem) -> dict[str, Any]:
    return asdict(p)


def fail(problems: Sequence[PolicyProblem], output_format: str) -> NoReturn:
    """Print every problem as `file:line: field: message (hint)` and exit 1."""
    if output_format == "json":
        emit_json({"valid": False, "problems": [problem_dict(p) for p in problems]})
    else:
        for p in problems:
            click.echo(str(p), err=True)
        noun = "problem" if len(problems) == 1 else "problems"
        click.echo(f"invalid: {len(problems)} {noun}", err=True)
    sys.exit(1)


def sources(paths: Sequence[str]) -> Any:
    return Path(paths[0]) if len(paths) == 1 else [Path(p) for p in paths]


def load_policy_set(paths: Sequence[str], output_format: str = "text") -> PolicySet:
    from guard.policy.loader import load_policies

    try:
        return load_policies(sources(paths))
    except PolicyError as exc:
        fail(exc.problems, output_format)


def parse_file(path: str, output_format: str = "text") -> list[PolicySpec]:
    from guard.policy.loader import parse_policies

    try:
        return list(parse_policies(Path(path)))
    except PolicyError as exc:
        fail(exc.problems, output_format)


def find_files(paths: Iterable[str], suffixes: tuple[str, ...], *, recursive: bool) -> list[Path]:
    """Files as given, and the matching files in each directory, sorted; dotfiles in a
    directory are left out, as loading a directory of policies does. Not `is_file()`,
    as there too: a dangling symlink named like a suite is a suite that cannot be read
    (reported, exit 1), not one to skip while the run passes. A pipe, socket or device in
    a directory is refused (`ClickException`): reading it would block."""
    out: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            found = path.rglob("*") if recursive else path.iterdir()
            listed = sorted(
                p
                for p in found
                if p.name.endswith(suffixes) and not p.name.startswith(".") and not p.is_dir()
            )
            for p in listed:
                if p.exists() and not p.is_file():  # reading it would wait for a writer
                    raise click.ClickException(
                        f"{p} is not a regular file (a pipe, socket or device)"
                    )
            out.extend(listed)
        else:
            out.append(path)  # named: may be a pipe (`<(generate-suite)`)
    return out


def plural(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def summary(policy_set: PolicySet) -> tuple[list[str], int, str]:
    """Policy names, rule count and content hash of a policy set."""
    names = [str(p.name) for p in getattr(policy_set, "policies", ())]
    return names, int(getattr(policy_set, "rule_count", 0)), str(getattr(policy_set, "hash", ""))


def short_hash(policy_set: PolicySet) -> str:
    return summary(policy_set)[2][:16]
