"""`mcp-guard` commands for policy authors: validate, info, create, format and convert here;
explain and test in `cli_decide`; what they share in `_cli_kit`.

Exit codes: 0 success; 1 a problem (invalid policy, failing case, unreadable file, bad
option); `explain` alone also exits 2 when the request is denied, so scripts can branch on
the decision (`mcp-guard explain ... && echo allowed`).
"""

from __future__ import annotations

import json
import math
import re
import sys
from collections.abc import Sequence
from dataclasses import asdict
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from guard.errors import PolicyError, PolicyProblem
from guard.policy._cli_kit import (
    FORMAT,
    IMPORT,
    POLICY_SUFFIXES,
    Command,
    emit_json,
    fail,
    find_files,
    load_policy_set,
    parse_file,
    plural,
    sources,
    summary,
)
from guard.policy.cli_decide import explain, run_tests

if TYPE_CHECKING:
    from guard.policy.spec import PolicySpec, RuleSpec

__all__ = ["COMMANDS"]


# --------------------------------------------------------------------------- validate


@click.command(cls=Command)
@click.argument("paths", nargs=-1, required=True, metavar="PATH...")
@IMPORT
@FORMAT
def validate(paths: tuple[str, ...], output_format: str) -> None:
    """Check policy files and directories; list every problem with file and line.

    Exits 0 when every policy is valid, 1 otherwise.

    \b
    Example:
        mcp-guard validate policies/
        mcp-guard validate base.yaml team.yaml --format json
    """
    from guard.policy.loader import load_policies, parse_policies

    problems: list[PolicyProblem] = []
    for path in paths:  # per path first, so one bad file does not hide another's problems
        try:
            parse_policies(Path(path))
        except PolicyError as exc:
            problems.extend(exc.problems)
    policy_set = None
    if not problems:
        try:
            policy_set = load_policies(sources(paths))
        except PolicyError as exc:
            problems.extend(exc.problems)
    if problems or policy_set is None:
        for path in paths:
            if path.endswith((".test.yaml", ".test.yml")) and output_format == "text":
                click.echo(
                    f"note: {path} looks like a policy test suite: mcp-guard test {path}", err=True
                )
        fail(problems, output_format)
    names, rule_count, content_hash = summary(policy_set)
    if output_format == "json":
        emit_json({"valid": True, "policies": names, "rules": rule_count, "hash": content_hash})
        return
    noun = "policy" if len(names) == 1 else "policies"
    click.echo(
        f"valid: {len(names)} {noun} ({', '.join(names)}), {plural(rule_count, 'rule')}, "
        f"hash {content_hash[:16]}"
    )


# --------------------------------------------------------------------------- info


def _matches(rule: RuleSpec) -> str:
    """`roles=admin; tools=get_*,list_*; actions=call` — what a rule applies to."""
    parts: list[str] = []
    for label, match in (
        ("agents", rule.agents),
        ("tools", rule.tools),
        ("resources", rule.resources),
        ("templates", rule.resource_templates),
        ("prompts", rule.prompts),
    ):
        if match is None:
            continue
        fields = [
            f"{name}={','.join(values)}"
            for name, values in asdict(match).items()
            if values is not None
        ]
        parts.append(f"{label}[{' '.join(fields)}]" if fields else f"{label}[any]")
    if tuple(rule.actions) != ("*",):
        parts.append(f"actions={','.join(rule.actions)}")
    if rule.conditions:
        parts.append(f"{len(rule.conditions)} condition(s)")
    return "; ".join(parts) or "everything"


@click.command(cls=Command)
@click.argument("paths", nargs=-1, required=True, metavar="PATH...")
@IMPORT
@FORMAT
def info(paths: tuple[str, ...], output_format: str) -> None:
    """Show policies, their rules (highest priority first) and the content hash.

    \b
    Example:
        mcp-guard info examples/policies/weather.yaml
    """
    from guard.policy.dump import spec_to_dict

    policy_set = load_policy_set(paths, output_format)
    specs = [spec for path in paths for spec in parse_file(path, output_format)]
    names, rule_count, content_hash = summary(policy_set)
    combining = str(getattr(policy_set, "combining", "first_match"))
    default = "allow" if getattr(policy_set, "default_allowed", False) else "deny"
    if output_format == "json":
        policies = [spec_to_dict(s) for s in specs]
        emit_json(
            {
                "hash": content_hash,
                "rules": rule_count,
                "combining": combining,
                "default_effect": default,
                "policies": policies,
            }
        )
        return
    for spec in specs:
        click.echo(f"policy {spec.name}  ({spec.source})")
        if spec.description:
            click.echo(f"  {spec.description}")
        stated = f", combining {spec.combining}" if spec.combining else ""
        click.echo(f"  version {spec.version}, default_effect {spec.default_effect}{stated}")
        if not spec.rules:
            click.echo("  (no rules)")
            continue
        width = max(len(r.name) for r in spec.rules)
        click.echo(f"  {'PRIORITY':>8}  EFFECT  {'RULE':<{width}}  MATCHES")
        for r in sorted(spec.rules, key=lambda r: -r.priority):
            click.echo(f"  {r.priority:>8}  {r.effect:<6}  {r.name:<{width}}  {_matches(r)}")
    click.echo(
        f"policy set: {len(names)} {'policy' if len(names) == 1 else 'policies'}, "
        f"{plural(rule_count, 'rule')}, combining {combining}, default {default} "
        f"(when no rule matches), hash {content_hash}"
    )


# --------------------------------------------------------------------------- create

_TEMPLATES: dict[str, str] = {
    "basic": """\
name: {name}
description: Starter policy. Deny what no rule allows.
default_effect: deny
rules:
  - name: admins_do_everything
    effect: allow
    priority: 1000
    agents: {{roles: [admin]}}
    tools: {{patterns: ["*"]}}
  - name: users_read_only_tools
    effect: allow
    priority: 500
    agents: {{roles: [user]}}
    tools: {{patterns: ["get_*", "list_*", "read_*"]}}
    actions: [list, call]
""",
    "rbac": """\
name: {name}
description: Role-based access; deny rules of higher priority win over allow rules.
default_effect: deny
rules:
  - name: nobody_runs_dangerous_tools
    effect: deny
    priority: 2000
    tools: {{tags: [dangerous]}}
  - name: admins_do_everything
    effect: allow
    priority: 1000
    agents: {{roles: [admin]}}
    tools: {{patterns: ["*"]}}
    resources: {{patterns: ["*"]}}
    prompts: {{patterns: ["*"]}}
  - name: developers_use_dev_tools
    effect: allow
    priority: 500
    agents: {{roles: [developer]}}
    tools: {{patterns: ["dev_*", "get_*", "list_*"]}}
  - name: users_use_public_tools
    effect: allow
    priority: 100
    agents: {{roles: [user]}}
    tools: {{tags: [public]}}
""",
    "readonly": """\
name: {name}
description: Everyone authenticated may read and list; nothing else.
default_effect: deny
rules:
  - name: read_tools
    effect: allow
    tools: {{patterns: ["get_*", "list_*", "read_*", "search_*"]}}
    actions: [list, call]
  - name: read_resources
    effect: allow
    resources: {{patterns: ["*"]}}
    actions: [list, read]
""",
}


@click.command(cls=Command)
@click.argument("name")
@click.option(
    "--template",
    "-t",
    type=click.Choice(sorted(_TEMPLATES)),
    default="basic",
    show_default=True,
    help="Starting point.",
)
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False),
    default=None,
    help="File to write (default NAME.yaml; `-` for standard output).",
)
@click.option("-d", "--description", default=None, help="The policy's description.")
@click.option("--force", is_flag=True, help="Overwrite an existing file.")
def create(
    name: str, template: str, output: str | None, description: str | None, force: bool
) -> None:
    """Write a starter policy that validates, to edit from there.

    \b
    Example:
        mcp-guard create my_service --template rbac -o policies/my_service.yaml
    """
    from guard.policy.loader import load_policies, parse_policies

    if not re.fullmatch(r"[A-Za-z0-9_.-]+", name):
        raise click.ClickException(f"policy name {name!r}: use letters, digits, `_`, `-` and `.`")
    # quoted: `2024`, `true`, `null` are valid names but YAML would read other types
    text = _TEMPLATES[template].format(name=json.dumps(name))
    if description is not None:  # JSON strings are YAML strings: quoting stays right
        first, _, rest = text.partition("\ndescription: ")
        text = f"{first}\ndescription: {json.dumps(description)}\n{rest.partition(chr(10))[2]}"
    load_policies(text)  # a template that does not load is our bug: fail loudly
    # written in canonical form, so `mcp-guard format --check` passes on a new policy
    as_json = output is not None and output.endswith(".json")
    text = _render(parse_policies(text), "json" if as_json else "yaml")
    if output == "-":
        click.echo(text, nl=False)
        return
    target = Path(output or f"{name}.yaml")
    if target.exists() and not force:
        raise click.ClickException(f"{target} exists; use --force to overwrite it")
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text, encoding="utf-8")
    click.echo(
        f"created {target} (template {template}); check it with: mcp-guard validate {target}"
    )


# --------------------------------------------------------------------------- format / convert


# Characters JSON writes raw but YAML, which reads every policy file (JSON too), cannot:
# DEL and the C1 controls it refuses, NEL it folds into a space inside quotes; and, to be
# safe, line separators, byte order marks, surrogates and non-characters. Written as
# `\uXXXX` escapes, they read back the same in JSON and in YAML.
_RAW_IN_JSON = re.compile("[\x7f-\x9f\u2028\u2029\ud800-\udfff\ufeff\ufffe\uffff]")


def _no_json_form(value: Any, path: str) -> tuple[str, str] | None:
    """The field and YAML spelling of the first value in `value` that JSON has no form for:
    `.inf`, `.nan` (JSON's `Infinity`, `NaN` read back as text) and dates (no JSON type)."""
    if isinstance(value, float) and not math.isfinite(value):
        return path, ".nan" if math.isnan(value) else ".inf" if value > 0 else "-.inf"
    if isinstance(value, date):  # a datetime too
        return path, value.isoformat(" ") if isinstance(value, datetime) else value.isoformat()
    children: list[tuple[str, Any]] = []
    if isinstance(value, dict):
        children = [(f"{path}.{key}", item) for key, item in value.items()]
    elif isinstance(value, list):
        children = [(f"{path}[{i}]", item) for i, item in enumerate(value)]
    for where, item in children:
        found = _no_json_form(item, where)
        if found is not None:
            return found
    return None


def _render(specs: Sequence[PolicySpec], to: str) -> str:
    """`specs` as canonical YAML or JSON text. Raises `ValueError` for a value JSON cannot
    write as itself: written as text, it would load back as a different policy."""
    from guard.policy.dump import dump_spec, spec_to_dict

    if to == "json":
        data = [spec_to_dict(s) for s in specs]
        for spec, item in zip(specs, data, strict=True):
            found = _no_json_form(item, "")
            if found is not None:
                field, shown = found
                raise ValueError(
                    f"policy {spec.name!r}: {field.lstrip('.')} is {shown}, which JSON cannot "
                    "write (it would load back as text); keep this policy in YAML"
                )
        text = json.dumps(data[0] if len(data) == 1 else data, indent=2, ensure_ascii=False)
        return _RAW_IN_JSON.sub(lambda m: f"\\u{ord(m.group()):04x}", text) + "\n"
    docs = [dump_spec(s) for s in specs]
    return "---\n".join(d if d.endswith("\n") else d + "\n" for d in docs)


def _has_comments(text: str) -> bool:
    # a heuristic: canonical output cannot keep comments, so warn before dropping them
    # (`#note` too; a `#` inside a quoted string only asks for --force needlessly)
    return any(re.search(r"(^|\s)#", line) for line in text.splitlines())


@click.command("format", cls=Command)
@click.argument("paths", nargs=-1, required=True, metavar="PATH...")
@click.option("--check", is_flag=True, help="Exit 1 and list the files that are not canonical.")
@click.option("--write", is_flag=True, help="Rewrite files in canonical form.")
@click.option("--force", is_flag=True, help="With --write: rewrite even files with comments.")
def format_policies(paths: tuple[str, ...], check: bool, write: bool, force: bool) -> None:
    """Print policies in canonical form (stable key order and style).

    Canonical YAML keeps no comments, so --write refuses files that have some unless
    --force is given. JSON files stay JSON.

    \b
    Example:
        mcp-guard format policies/ --check
        mcp-guard format team.yaml --write
    """
    from guard.policy.loader import parse_policies

    if check and write:
        raise click.ClickException("use either --check or --write")
    files = find_files(paths, POLICY_SUFFIXES, recursive=False)
    if not files:  # (an empty directory must not pass a CI check having checked nothing)
        raise click.ClickException("no policy files (*.yaml, *.yml) found")
    # Every file is read and rendered before anything is written or printed: a check names
    # every broken file, and --write rewrites nothing while one is broken or refused.
    rendered: list[tuple[Path, str, str]] = []
    problems: list[PolicyProblem] = []
    for path in files:
        try:
            specs = list(parse_policies(path))
        except PolicyError as exc:
            problems.extend(exc.problems)
            continue
        text = path.read_text(encoding="utf-8")
        try:
            canonical = _render(specs, "json" if path.suffix == ".json" else "yaml")
        except ValueError as exc:
            problems.append(PolicyProblem(str(exc), str(path), code="no_json_form"))
            continue
        rendered.append((path, text, canonical))
    if problems:
        fail(problems, "text")
    if not check and not write:  # YAML documents (JSON is YAML): the same policies
        click.echo("---\n".join(canonical for _, _, canonical in rendered), nl=False)
        return
    changed = [(path, text, canonical) for path, text, canonical in rendered if canonical != text]
    if write and not force:
        for path, text, _ in changed:
            if _has_comments(text):
                raise click.ClickException(
                    f"{path} has comments, which canonical form drops; "
                    "add --force to rewrite it anyway"
                )
    for path, _, canonical in changed:
        if write:
            path.write_text(canonical, encoding="utf-8")
            click.echo(f"reformatted {path}")
        else:
            click.echo(f"would reformat {path}")
    if check:
        noun = "file" if len(files) == 1 else "files"
        click.echo(f"{len(changed)} of {len(files)} {noun} would be reformatted", err=True)
        if changed:
            sys.exit(1)


@click.command(cls=Command)
@click.argument("path")
@click.option(
    "--to", "to", type=click.Choice(["yaml", "json"]), required=True, help="Target format."
)
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False),
    default=None,
    help="File to write (default: standard output).",
)
@click.option("--force", is_flag=True, help="Overwrite an existing output file.")
def convert(path: str, to: str, output: str | None, force: bool) -> None:
    """Convert a policy file between YAML and JSON (both load with `load_policies`).

    \b
    Example:
        mcp-guard convert policies/weather.yaml --to json -o weather.json
    """
    try:
        text = _render(parse_file(path), to)
    except ValueError as exc:
        raise click.ClickException(f"{path}: {exc}") from None
    if output is None:
        click.echo(text, nl=False)
        return
    # as `create` does: -o naming a hand-written policy would replace it, comments and all
    if Path(output).exists() and not force:
        raise click.ClickException(f"{output} exists; use --force to overwrite it")
    try:
        Path(output).write_text(text, encoding="utf-8")
    except OSError as exc:
        raise click.ClickException(f"cannot write {output}: {exc.strerror or exc}") from None
    click.echo(f"wrote {output} ({to})", err=True)


COMMANDS: list[click.Command] = [
    validate,
    info,
    create,
    format_policies,
    convert,
    explain,
    run_tests,
]
