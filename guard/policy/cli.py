"""`mcp-guard` commands for policy authors: validate, info, create, format, convert,
explain and test.

Exit codes: 0 success; 1 a problem (invalid policy, failing case, unreadable file, bad
option); `explain` alone also exits 2 when the request is denied, so scripts can branch on
the decision (`mcp-guard explain ... && echo allowed`).
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Iterable, Sequence
from dataclasses import asdict, is_dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import click

from guard.errors import PolicyError, PolicyProblem

if TYPE_CHECKING:
    from guard.policy.policyset import PolicySet
    from guard.policy.spec import PolicySpec, RuleSpec

__all__ = ["COMMANDS"]

# as `load_policies` reads a directory: its own files, not subdirectories
_POLICY_SUFFIXES = (".yaml", ".yml")
_FORMAT = click.option(
    "--format",
    "output_format",
    type=click.Choice(["text", "json"]),
    default="text",
    show_default=True,
    help="Output for people or for machines.",
)


def _import_modules(ctx: click.Context, param: click.Parameter, values: tuple[str, ...]) -> None:
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


_IMPORT = click.option(
    "--import",
    "imports",
    multiple=True,
    metavar="MODULE",
    expose_value=False,
    callback=_import_modules,
    help="Python module or .py file to import first, e.g. one registering custom conditions.",
)


class _Command(click.Command):
    """A command whose usage errors exit 1, keeping exit 2 free to mean "denied"."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        try:
            return super().parse_args(ctx, args)
        except click.UsageError as exc:
            exc.exit_code = 1
            raise


# --------------------------------------------------------------------------- helpers


def _emit_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, default=str))


def _problem_dict(p: PolicyProblem) -> dict[str, Any]:
    return asdict(p)


def _fail(problems: Sequence[PolicyProblem], output_format: str) -> NoReturn:
    """Print every problem as `file:line: field: message (hint)` and exit 1."""
    if output_format == "json":
        _emit_json({"valid": False, "problems": [_problem_dict(p) for p in problems]})
    else:
        for p in problems:
            click.echo(str(p), err=True)
        noun = "problem" if len(problems) == 1 else "problems"
        click.echo(f"invalid: {len(problems)} {noun}", err=True)
    sys.exit(1)


def _sources(paths: Sequence[str]) -> Any:
    return Path(paths[0]) if len(paths) == 1 else [Path(p) for p in paths]


def _load(paths: Sequence[str], output_format: str = "text") -> PolicySet:
    from guard.policy.loader import load_policies

    try:
        return load_policies(_sources(paths))
    except PolicyError as exc:
        _fail(exc.problems, output_format)


def _parse(path: str, output_format: str = "text") -> list[PolicySpec]:
    from guard.policy.loader import parse_policies

    try:
        return list(parse_policies(Path(path)))
    except PolicyError as exc:
        _fail(exc.problems, output_format)


def _files(paths: Iterable[str], suffixes: tuple[str, ...], *, recursive: bool) -> list[Path]:
    """Files as given, and the matching files in each directory, sorted."""
    out: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            found = path.rglob("*") if recursive else path.iterdir()
            out.extend(sorted(p for p in found if p.name.endswith(suffixes) and p.is_file()))
        else:
            out.append(path)
    return out


def _plural(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def _summary(policy_set: PolicySet) -> tuple[list[str], int, str]:
    """Policy names, rule count and content hash of a policy set."""
    names = [str(p.name) for p in getattr(policy_set, "policies", ())]
    return names, int(getattr(policy_set, "rule_count", 0)), str(getattr(policy_set, "hash", ""))


def _short_hash(policy_set: PolicySet) -> str:
    return _summary(policy_set)[2][:16]


# --------------------------------------------------------------------------- validate


@click.command(cls=_Command)
@click.argument("paths", nargs=-1, required=True, metavar="PATH...")
@_IMPORT
@_FORMAT
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
            policy_set = load_policies(_sources(paths))
        except PolicyError as exc:
            problems.extend(exc.problems)
    if problems or policy_set is None:
        for path in paths:
            if path.endswith((".test.yaml", ".test.yml")) and output_format == "text":
                click.echo(
                    f"note: {path} looks like a policy test suite: mcp-guard test {path}", err=True
                )
        _fail(problems, output_format)
    names, rule_count, content_hash = _summary(policy_set)
    if output_format == "json":
        _emit_json({"valid": True, "policies": names, "rules": rule_count, "hash": content_hash})
        return
    noun = "policy" if len(names) == 1 else "policies"
    click.echo(
        f"valid: {len(names)} {noun} ({', '.join(names)}), {_plural(rule_count, 'rule')}, "
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


@click.command(cls=_Command)
@click.argument("paths", nargs=-1, required=True, metavar="PATH...")
@_IMPORT
@_FORMAT
def info(paths: tuple[str, ...], output_format: str) -> None:
    """Show policies, their rules (highest priority first) and the content hash.

    \b
    Example:
        mcp-guard info examples/policies/weather.yaml
    """
    from guard.policy.dump import spec_to_dict

    policy_set = _load(paths, output_format)
    specs = [spec for path in paths for spec in _parse(path, output_format)]
    names, rule_count, content_hash = _summary(policy_set)
    combining = str(getattr(policy_set, "combining", "first_match"))
    default = "allow" if getattr(policy_set, "default_allowed", False) else "deny"
    if output_format == "json":
        policies = [spec_to_dict(s) for s in specs]
        _emit_json(
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
        f"{_plural(rule_count, 'rule')}, combining {combining}, default {default} "
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


@click.command(cls=_Command)
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
    from guard.policy.loader import load_policies

    if not re.fullmatch(r"[A-Za-z0-9_.-]+", name):
        raise click.ClickException(f"policy name {name!r}: use letters, digits, `_`, `-` and `.`")
    text = _TEMPLATES[template].format(name=name)
    if description is not None:  # JSON strings are YAML strings: quoting stays right
        first, _, rest = text.partition("\ndescription: ")
        text = f"{first}\ndescription: {json.dumps(description)}\n{rest.partition(chr(10))[2]}"
    load_policies(text)  # a template that does not load is our bug: fail loudly
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


def _render(specs: Sequence[PolicySpec], to: str) -> str:
    from guard.policy.dump import dump_spec, spec_to_dict

    if to == "json":
        data = [spec_to_dict(s) for s in specs]
        return json.dumps(data[0] if len(data) == 1 else data, indent=2, ensure_ascii=False) + "\n"
    docs = [dump_spec(s) for s in specs]
    return "---\n".join(d if d.endswith("\n") else d + "\n" for d in docs)


def _has_comments(text: str) -> bool:
    # a heuristic: canonical output cannot keep comments, so warn before dropping them
    return any(re.match(r"^\s*#|.*\s#\s", line) for line in text.splitlines())


@click.command("format", cls=_Command)
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
        mcp-guard format policies/weather.yaml --write
    """
    if check and write:
        raise click.ClickException("use either --check or --write")
    files = _files(paths, _POLICY_SUFFIXES, recursive=False)
    changed: list[Path] = []
    for path in files:
        specs = _parse(str(path))
        text = path.read_text(encoding="utf-8")
        canonical = _render(specs, "json" if path.suffix == ".json" else "yaml")
        if canonical == text:
            continue
        changed.append(path)
        if write:
            if _has_comments(text) and not force:
                raise click.ClickException(
                    f"{path} has comments, which canonical form drops; "
                    "add --force to rewrite it anyway"
                )
            path.write_text(canonical, encoding="utf-8")
            click.echo(f"reformatted {path}")
        elif check:
            click.echo(f"would reformat {path}")
        else:
            click.echo(canonical, nl=False)
    if not check and not write:
        for path in files:  # already canonical: still print it, the user asked for it
            if path not in changed:
                click.echo(path.read_text(encoding="utf-8"), nl=False)
    if check:
        noun = "file" if len(files) == 1 else "files"
        click.echo(f"{len(changed)} of {len(files)} {noun} would be reformatted", err=True)
        if changed:
            sys.exit(1)


@click.command(cls=_Command)
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
def convert(path: str, to: str, output: str | None) -> None:
    """Convert a policy file between YAML and JSON (both load with `load_policies`).

    \b
    Example:
        mcp-guard convert policies/weather.yaml --to json -o weather.json
    """
    text = _render(_parse(path), to)
    if output is None:
        click.echo(text, nl=False)
        return
    Path(output).write_text(text, encoding="utf-8")
    click.echo(f"wrote {output} ({to})", err=True)


# --------------------------------------------------------------------------- explain


def _pairs(values: Sequence[str], option: str) -> dict[str, Any]:
    """`key=value` options; values read as JSON when they parse (5, true, ["a"]), else text."""
    out: dict[str, Any] = {}
    for item in values:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise click.ClickException(f"{option} {item!r}: expected KEY=VALUE")
        try:
            out[key] = json.loads(raw)
        except ValueError:
            out[key] = raw
    return out


def _jsonable(value: Any) -> Any:
    if is_dataclass(value) and not isinstance(value, type):
        return {k: _jsonable(v) for k, v in asdict(value).items()}
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | frozenset | set):
        return [_jsonable(v) for v in value]
    return value


@click.command(cls=_Command)
@click.argument("policy_path", metavar="POLICY_PATH")
@click.option(
    "--request",
    "request_file",
    type=click.Path(dir_okay=False),
    help="The request as a JSON or YAML file, in the form of a test-suite case.",
)
@click.option("--user", help="Principal's user id.")
@click.option("--role", "roles", multiple=True, help="A role of the principal (repeatable).")
@click.option("--agent", help="Principal's agent id.")
@click.option("--claim", "claims", multiple=True, metavar="KEY=VALUE", help="A claim (repeatable).")
@click.option("--anonymous", is_flag=True, help="An unauthenticated principal.")
@click.option("--tool", help="Tool name.")
@click.option("--resource", help="Resource URI.")
@click.option("--prompt", help="Prompt name.")
@click.option("--tag", "tags", multiple=True, help="A tag of the component (repeatable).")
@click.option("--action", help="call, read, get or list (default: what the component does).")
@click.option(
    "--arg",
    "args",
    multiple=True,
    metavar="KEY=VALUE",
    help="An argument (repeatable); VALUE is read as JSON when it parses.",
)
@click.option("--time", "when", metavar="ISO", help="The clock to decide with (ISO 8601).")
@_IMPORT
@_FORMAT
def explain(
    policy_path: str,
    request_file: str | None,
    user: str | None,
    roles: tuple[str, ...],
    agent: str | None,
    claims: tuple[str, ...],
    anonymous: bool,
    tool: str | None,
    resource: str | None,
    prompt: str | None,
    tags: tuple[str, ...],
    action: str | None,
    args: tuple[str, ...],
    when: str | None,
    output_format: str,
) -> None:
    """Decide one request and show why, rule by rule.

    Exits 0 when the request is allowed, 2 when it is denied, 1 on any error.

    \b
    Example:
        mcp-guard explain policies/ --user alice --role user --tool get_weather --arg city=Paris
        mcp-guard explain policies/ --request request.json --format json
    """
    from guard.policy.testing import parse_request

    data: dict[str, Any]
    flags = (
        user,
        roles,
        agent,
        claims,
        anonymous,
        tool,
        resource,
        prompt,
        tags,
        action,
        args,
        when,
    )
    if request_file is not None:
        if any(flags):
            raise click.ClickException("give the request either with --request or with options")
        data = _read_request(request_file)
        source = request_file
    else:
        components = [c for c in (tool, resource, prompt) if c is not None]
        if len(components) != 1:
            raise click.ClickException("give exactly one of --tool, --resource or --prompt")
        data = {}
        if not anonymous:
            principal: dict[str, Any] = {"user_id": user, "roles": list(roles)}
            if agent:
                principal["agent_id"] = agent
            if claims:
                principal["claims"] = _pairs(claims, "--claim")
            data["principal"] = principal
        for key, value in (("tool", tool), ("resource", resource), ("prompt", prompt)):
            if value is not None:
                data[key] = {"name": value, "tags": list(tags)} if tags else value
                if tags and key == "resource":
                    data[key]["uri"] = value
        if action:
            data["action"] = action
        if args:
            data["args"] = _pairs(args, "--arg")
        if when:
            data["time"] = when
        source = "<command line>"
    try:
        request = parse_request(data, source)
    except PolicyError as exc:
        _fail(exc.problems, output_format)
    policy_set = _load((policy_path,), output_format)
    explanation = policy_set.explain(request)
    decision = explanation.decision
    if output_format == "json":
        _emit_json(_jsonable(explanation))
    else:
        verdict = "ALLOWED" if decision.allowed else "DENIED"
        by = f" by rule {decision.policy}/{decision.rule}" if decision.rule else ""
        click.echo(f"{verdict}{by} (reason: {decision.reason})")
        if decision.message:
            click.echo(f"  {decision.message}")
        for error in decision.errors:
            click.echo(f"  error: {error}")
        click.echo(f"rules in evaluation order (=> decided), policy set {_short_hash(policy_set)}:")
        for line in _trace_lines(explanation):
            click.echo(f"  {line}")
    sys.exit(0 if decision.allowed else 2)


def _read_request(path: str) -> dict[str, Any]:
    import yaml

    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        problem = PolicyProblem(
            f"cannot read request: {exc.strerror or exc}", path, code="unreadable"
        )
        _fail([problem], "text")
    except yaml.YAMLError as exc:
        _fail([PolicyProblem(f"not valid JSON or YAML: {exc}", path, code="yaml_syntax")], "text")
    if not isinstance(data, dict):
        _fail([PolicyProblem("a request is a mapping", path, 1, code="wrong_type")], "text")
    return data


def _trace_lines(explanation: Any) -> list[str]:
    """One line per rule, in evaluation order; `=>` marks the rule that decided."""
    steps = getattr(explanation, "steps", ())
    if not steps:
        return ["no rule was evaluated"]
    width = max(len(f"{s.policy}/{s.rule}") for s in steps)
    lines = []
    for s in steps:
        mark = "=>" if s.deciding else "  "
        why = f" [{s.failed}]" if s.failed else ""
        detail = f": {s.detail}" if s.detail else ""
        name = f"{s.policy}/{s.rule}"
        lines.append(
            f"{mark} {name:<{width}}  {s.priority:>6}  {s.effect:<5}  {s.outcome}{why}{detail}"
        )
    return lines


# --------------------------------------------------------------------------- test


@click.command("test", cls=_Command)
@click.argument("suites", nargs=-1, required=True, metavar="SUITE...")
@click.option("-v", "--verbose", is_flag=True, help="Also list the cases that pass.")
@click.option("--coverage", is_flag=True, help="List the rules that decided no case.")
@click.option(
    "--junit-xml",
    "junit",
    type=click.Path(dir_okay=False),
    default=None,
    metavar="FILE",
    help="Also write a JUnit XML report (for CI).",
)
@_IMPORT
@_FORMAT
def run_tests(
    suites: tuple[str, ...], verbose: bool, coverage: bool, junit: str | None, output_format: str
) -> None:
    """Run policy test suites; exit 1 if any case fails or any suite is malformed.

    A directory stands for every `*.test.yaml` / `*.test.yml` file under it. Each failing
    case is shown with expected vs actual (allowed, rule, reason).

    \b
    Example:
        mcp-guard test examples/policies/
        mcp-guard test policies/tests/weather.test.yaml -v --coverage
    """
    from guard.policy.testing import run_suite

    files = _files(suites, (".test.yaml", ".test.yml"), recursive=True)
    if not files:
        raise click.ClickException("no suite files (*.test.yaml) found")
    passed = failed = broken = 0
    report: list[dict[str, Any]] = []
    for path in files:
        try:
            result = run_suite(path)
        except PolicyError as exc:
            broken += 1
            report.append(
                {"suite": str(path), "problems": [_problem_dict(p) for p in exc.problems]}
            )
            if output_format == "text":
                for p in exc.problems:
                    click.echo(f"ERROR {p}")
            continue
        failed += len(result.failures)
        passed += len(result.results) - len(result.failures)
        report.append(
            {
                "suite": str(path),
                "policy_hash": result.policy_hash,
                "uncovered_rules": list(result.uncovered),
                "cases": [
                    {
                        "name": r.case.name,
                        "line": r.case.line,
                        "passed": r.passed,
                        "mismatches": [_jsonable(m) for m in r.mismatches],
                        "decision": _jsonable(r.decision),
                    }
                    for r in result.results
                ],
            }
        )
        if output_format == "text":
            click.echo(result.report(verbose=verbose))
            if coverage:
                missing = result.uncovered
                decided = len(result.rules) - len(missing)
                never = f"; never deciding: {', '.join(missing)}" if missing else ""
                click.echo(
                    f"  coverage: {decided} of {len(result.rules)} rules decided a case{never}"
                )
    if junit is not None:
        Path(junit).write_text(_junit_xml(report), encoding="utf-8")
    if output_format == "json":
        _emit_json({"passed": passed, "failed": failed, "errors": broken, "suites": report})
    else:
        noun = "suite" if len(files) == 1 else "suites"
        click.echo(f"{passed} passed, {failed} failed, {broken} broken in {len(files)} {noun}")
    sys.exit(1 if failed or broken else 0)


def _junit_xml(report: list[dict[str, Any]]) -> str:
    """JUnit XML, the report format CI systems display: one testsuite per suite file."""
    from xml.etree import ElementTree as ET

    from guard.policy.testing import Mismatch

    root = ET.Element("testsuites", name="mcp-guard policy tests")
    for suite in report:
        node = ET.SubElement(root, "testsuite", name=suite["suite"])
        if "problems" in suite:  # the suite did not load
            node.set("tests", "1")
            node.set("errors", "1")
            case = ET.SubElement(node, "testcase", classname=suite["suite"], name="load suite")
            text = "\n".join(str(PolicyProblem(**p)) for p in suite["problems"])
            ET.SubElement(case, "error", message="suite did not load").text = text
            continue
        cases = suite["cases"]
        node.set("tests", str(len(cases)))
        node.set("failures", str(sum(not c["passed"] for c in cases)))
        for c in cases:
            case = ET.SubElement(
                node,
                "testcase",
                classname=suite["suite"],
                name=c["name"],
                file=suite["suite"],
                line=str(c["line"] or ""),
            )
            if not c["passed"]:
                lines = [str(Mismatch(**m)) for m in c["mismatches"]]
                ET.SubElement(case, "failure", message=lines[0]).text = "\n".join(lines)
    return ET.tostring(root, encoding="unicode", xml_declaration=True) + "\n"


COMMANDS: list[click.Command] = [
    validate,
    info,
    create,
    format_policies,
    convert,
    explain,
    run_tests,
]
