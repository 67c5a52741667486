"""`mcp-guard explain` and `mcp-guard test`: decide a request, or a suite of them, and show
why. `explain` exits 2 when the request is denied, so scripts can branch on the decision."""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Sequence
from dataclasses import asdict, is_dataclass
from pathlib import Path
from typing import Any

import click

from guard.errors import PolicyError, PolicyProblem
from guard.policy._cli_kit import (
    FORMAT,
    IMPORT,
    Command,
    emit_json,
    fail,
    find_files,
    load_policy_set,
    problem_dict,
    short_hash,
)

__all__ = ["explain", "run_tests"]

# --------------------------------------------------------------------------- explain


def _pairs(values: Sequence[str], option: str) -> dict[str, Any]:
    """`key=value` options; values read as JSON when they parse (5, true, ["a"]), else text."""
    out: dict[str, Any] = {}
    for item in values:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise click.UsageError(f"{option} {item!r}: expected KEY=VALUE")
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


@click.command(cls=Command)
@click.argument("policy_path", metavar="POLICY_PATH")
@click.option(
    "--request",
    "request_file",
    type=click.Path(dir_okay=False),
    help="The request as a JSON or YAML file: a test-suite case without name and expect.",
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
@IMPORT
@FORMAT
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
            raise click.UsageError("give the request either with --request or with options")
        data = _read_request(request_file, output_format)
        source = request_file
    else:
        components = [c for c in (tool, resource, prompt) if c is not None]
        if len(components) != 1:
            raise click.UsageError("give exactly one of --tool, --resource or --prompt")
        if anonymous and (user or roles or agent or claims):
            raise click.UsageError("--anonymous takes no --user, --role, --agent or --claim")
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
        fail(exc.problems, output_format)
    policy_set = load_policy_set((policy_path,), output_format)
    explanation = policy_set.explain(request)
    decision = explanation.decision
    if output_format == "json":
        emit_json(_jsonable(explanation))
    else:
        verdict = "ALLOWED" if decision.allowed else "DENIED"
        by = f" by rule {decision.policy}/{decision.rule}" if decision.rule else ""
        click.echo(f"{verdict}{by} (reason: {decision.reason})")
        if decision.message:
            click.echo(f"  {decision.message}")
        for error in decision.errors:
            click.echo(f"  error: {error}")
        click.echo(f"rules in evaluation order (=> decided), policy set {short_hash(policy_set)}:")
        for line in _trace_lines(explanation):
            click.echo(f"  {line}")
    sys.exit(0 if decision.allowed else 2)


def _read_request(path: str, output_format: str) -> dict[str, Any]:
    """A request file, read as strictly as a test case (a key written twice is refused)."""
    import yaml

    from guard.policy._request_form import duplicate_keys, load_yaml
    from guard.policy.loader import read_input_text

    try:
        text = read_input_text(path)
        data = load_yaml(text)
    except (OSError, UnicodeDecodeError) as exc:
        why = "not UTF-8" if isinstance(exc, UnicodeDecodeError) else exc.strerror or exc
        problem = PolicyProblem(f"cannot read request: {why}", path, code="unreadable")
        fail([problem], output_format)
    except yaml.YAMLError as exc:
        problem = PolicyProblem(f"not valid JSON or YAML: {exc}", path, code="yaml_syntax")
        fail([problem], output_format)
    if not isinstance(data, dict):
        fail([PolicyProblem("a request is a mapping", path, 1, code="wrong_type")], output_format)
    problems = [  # a key written twice anywhere: YAML keeps the last one silently
        PolicyProblem(f"duplicate key {key!r}", path, line, code="duplicate_key")
        for _, key, line, _ in duplicate_keys(data)
    ]
    if problems:
        fail(problems, output_format)
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


@click.command("test", cls=Command)
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
@IMPORT
@FORMAT
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

    files = find_files(suites, (".test.yaml", ".test.yml"), recursive=True)
    if not files:
        raise click.ClickException("no suite files (*.test.yaml) found")
    passed = failed = broken = 0
    report: list[dict[str, Any]] = []
    for path in files:
        try:
            result = run_suite(path)
        except PolicyError as exc:
            broken += 1
            report.append({"suite": str(path), "problems": [problem_dict(p) for p in exc.problems]})
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
        try:
            Path(junit).write_text(_junit_xml(report), encoding="utf-8")
        except OSError as exc:
            raise click.ClickException(f"cannot write {junit}: {exc.strerror or exc}") from None
    if output_format == "json":
        emit_json({"passed": passed, "failed": failed, "errors": broken, "suites": report})
    else:
        noun = "suite" if len(files) == 1 else "suites"
        click.echo(f"{passed} passed, {failed} failed, {broken} broken in {len(files)} {noun}")
    sys.exit(1 if failed or broken else 0)


# characters XML 1.0 cannot carry at all, even escaped
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def _xml_text(text: str) -> str:
    """`text` with the characters XML cannot carry shown as escapes (`\\x07`): written
    raw, CI's parser would reject the whole report."""
    return _NOT_XML.sub(
        lambda m: f"\\x{ord(m[0]):02x}" if m[0] < " " else f"\\u{ord(m[0]):04x}", text
    )


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
    for element in root.iter():  # names and messages may quote anything a suite held
        element.attrib.update({k: _xml_text(v) for k, v in element.attrib.items()})
        if element.text:
            element.text = _xml_text(element.text)
    return ET.tostring(root, encoding="unicode", xml_declaration=True) + "\n"
