"""`mcp-guard` policy commands through click's runner: happy paths, failures, exit codes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from guard.cli import main
from guard.policy.dump import spec_to_dict
from guard.policy.loader import load_policies, parse_policies
from guard.policy.spec import content_of
from guard.policy.testing import parse_request

COMMANDS = ["validate", "info", "create", "format", "convert", "explain", "test"]

BROKEN = """\
name: broken
default_effect: deny
rules:
  - name: r1
    effect: allow
    tools:
      paterns: ["get_*"]
  - name: r2
    effect: permit
"""


def run(*args: str | Path) -> Result:
    return CliRunner().invoke(main, [str(a) for a in args])


def _broken(tmp_path: Path, name: str = "broken.yaml") -> Path:
    path = tmp_path / name
    path.write_text(BROKEN)
    return path


def test_group_help_lists_every_policy_command() -> None:
    result = run("--help")
    assert result.exit_code == 0
    for command in COMMANDS:
        assert f"  {command} " in result.output


# --------------------------------------------------------------------------- validate


def test_validate_accepts_the_examples(examples: Path) -> None:
    result = run("validate", examples)
    assert result.exit_code == 0, result.output
    assert result.output.startswith(
        "valid: 2 policies (my_service_policy, weather_service), 8 rules"
    )
    policy_set = load_policies(examples)
    assert policy_set.hash[:16] in result.output


def test_validate_lists_every_problem_with_file_and_line(tmp_path: Path, examples: Path) -> None:
    bad = _broken(tmp_path)
    other = tmp_path / "other.yaml"
    other.write_text("name: other\nrules:\n  - name: x\n    effect: allow\n    priorty: 3\n")
    result = run("validate", examples / "seed.yaml", bad, other)
    assert result.exit_code == 1
    lines = result.stderr.splitlines()
    assert any(
        ln.startswith(f"{bad}:7: rules[0].tools.paterns:") and "patterns" in ln for ln in lines
    )
    assert any(ln.startswith(f"{bad}:9: rules[1].effect:") for ln in lines)
    assert any(ln.startswith(f"{other}:5: rules[0].priorty:") and "priority" in ln for ln in lines)
    assert lines[-1] == "invalid: 3 problems"


def test_validate_json(tmp_path: Path, examples: Path) -> None:
    ok = json.loads(run("validate", examples / "weather.yaml", "--format", "json").stdout)
    assert ok["valid"] is True and ok["policies"] == ["weather_service"] and ok["rules"] == 6
    assert len(ok["hash"]) >= 16
    result = run("validate", _broken(tmp_path), "--format", "json")
    assert result.exit_code == 1
    report = json.loads(result.stdout)
    assert report["valid"] is False
    assert {(p["line"], p["field"]) for p in report["problems"]} >= {
        (7, "rules[0].tools.paterns"),
        (9, "rules[1].effect"),
    }


def test_validate_points_a_suite_to_the_test_command(examples: Path) -> None:
    suite = examples / "tests" / "seed.test.yaml"
    result = run("validate", suite)
    assert result.exit_code == 1
    assert f"note: {suite} looks like a policy test suite: mcp-guard test {suite}" in result.stderr


def test_validate_missing_file(tmp_path: Path) -> None:
    result = run("validate", tmp_path / "nope.yaml")
    assert result.exit_code == 1
    assert str(tmp_path / "nope.yaml") in result.stderr


# --------------------------------------------------------------------------- info


def test_info_shows_rules_by_priority(examples: Path) -> None:
    result = run("info", examples / "weather.yaml")
    assert result.exit_code == 0, result.output
    out = result.output
    assert "policy weather_service" in out and "version 1.0, default_effect deny" in out
    assert "policy set: 1 policy, 6 rules, combining first_match, default deny" in out
    order = [
        out.index(name)
        for name in (
            "admins_do_everything",
            "nobody_else_deletes",
            "forecasts_at_most_seven_days",
            "users_read_weather",
        )
    ]
    assert order == sorted(order)
    assert "roles=admin" in out and "names=get_weather,get_forecast" in out
    assert "actions=list,call" in out and "2 condition(s)" in out
    assert load_policies(examples / "weather.yaml").hash in out


def test_info_json_and_failure(tmp_path: Path, examples: Path) -> None:
    data = json.loads(run("info", examples / "seed.yaml", "--format", "json").stdout)
    assert [p["name"] for p in data["policies"]] == ["my_service_policy"]
    assert data["rules"] == 2
    result = run("info", _broken(tmp_path))
    assert result.exit_code == 1 and f"{tmp_path / 'broken.yaml'}:7:" in result.stderr


# --------------------------------------------------------------------------- create


@pytest.mark.parametrize("template", ["basic", "rbac", "readonly"])
def test_create_writes_a_policy_that_validates(tmp_path: Path, template: str) -> None:
    target = tmp_path / "sub" / "p.yaml"
    result = run("create", "my_service", "--template", template, "-o", target)
    assert result.exit_code == 0, result.output
    (spec,) = parse_policies(target)
    assert spec.name == "my_service" and spec.rules and spec.default_effect == "deny"
    assert run("validate", target).exit_code == 0
    # already in canonical form: a new policy passes a `format --check` CI step
    assert run("format", "--check", target).exit_code == 0
    as_json = tmp_path / "p.json"
    assert run("create", "my_service", "--template", template, "-o", as_json).exit_code == 0
    assert [content_of(s) for s in parse_policies(as_json)] == [content_of(spec)]
    assert run("format", "--check", as_json).exit_code == 0


def test_create_defaults_refuses_to_overwrite_and_prints(tmp_path: Path) -> None:
    assert run("create", "svc").exit_code == 0
    assert (tmp_path / "svc.yaml").exists()  # tests run in tmp_path
    again = run("create", "svc")
    assert again.exit_code == 1 and "exists; use --force" in again.output
    assert run("create", "svc", "--force", "--template", "rbac").exit_code == 0
    assert "nobody_runs_dangerous_tools" in (tmp_path / "svc.yaml").read_text()
    printed = run("create", "svc", "-o", "-")
    assert printed.exit_code == 0 and printed.stdout.startswith("name: svc\n")
    bad = run("create", "bad name: x")
    assert bad.exit_code == 1 and "policy name" in bad.output
    unknown = run("create", "svc", "--template", "nope")
    assert unknown.exit_code == 1


# --------------------------------------------------------------------------- format


def test_format_check_write_and_print(examples: Path) -> None:
    path = examples / "seed.yaml"
    before = spec_to_dict(parse_policies(path)[0])
    check = run("format", path, "--check")
    assert check.exit_code == 1 and f"would reformat {path}" in check.output
    printed = run("format", path)
    assert printed.exit_code == 0
    assert path.read_text() != printed.stdout  # printing leaves the file alone
    refused = run("format", path, "--write")  # the seed policy has a comment
    assert refused.exit_code == 1 and "comments" in refused.output
    assert run("format", path, "--write", "--force").exit_code == 0
    assert path.read_text() == printed.stdout
    assert spec_to_dict(parse_policies(path)[0]) == before  # same policy, canonical text
    assert run("format", path, "--check").exit_code == 0
    assert run("format", path, "--check", "--write").exit_code == 1


def test_format_a_directory_and_a_broken_file(tmp_path: Path, examples: Path) -> None:
    result = run("format", examples, "--check")
    assert result.exit_code == 1
    assert "2 of 2 files would be reformatted" in result.stderr
    broken = run("format", _broken(tmp_path))
    assert broken.exit_code == 1 and f"{tmp_path / 'broken.yaml'}:7:" in broken.stderr


def test_format_reports_every_broken_file_and_changes_nothing(tmp_path: Path) -> None:
    """A CI check names every file it cannot read, not just the first; and --write
    rewrites nothing while any file is broken or refused (no half-formatted tree)."""
    _broken(tmp_path, "a.yaml")
    _broken(tmp_path, "c.yaml")
    messy = tmp_path / "b.yaml"
    messy.write_text("{name: b, default_effect: deny, rules: []}\n")
    before = messy.read_text()
    checked = run("format", tmp_path, "--check")
    assert checked.exit_code == 1
    assert f"{tmp_path / 'a.yaml'}:7:" in checked.stderr
    assert f"{tmp_path / 'c.yaml'}:7:" in checked.stderr
    assert run("format", tmp_path, "--write").exit_code == 1
    assert messy.read_text() == before
    for name in ("a.yaml", "c.yaml"):
        (tmp_path / name).unlink()
    commented = tmp_path / "a.yaml"
    commented.write_text("# keep me\nname: a\ndefault_effect: deny\nrules: []\n")
    refused = run("format", tmp_path, "--write")
    assert refused.exit_code == 1 and "comments" in refused.output
    assert messy.read_text() == before  # b.yaml was not rewritten before a.yaml refused
    assert run("format", tmp_path, "--write", "--force").exit_code == 0
    assert messy.read_text() != before and run("format", tmp_path, "--check").exit_code == 0


# --------------------------------------------------------------------------- convert


def test_convert_round_trip_keeps_the_policy(tmp_path: Path, examples: Path) -> None:
    source = examples / "weather.yaml"
    json_path = tmp_path / "weather.json"
    result = run("convert", source, "--to", "json", "-o", json_path)
    assert result.exit_code == 0, result.output
    data = json.loads(json_path.read_text())
    assert data["name"] == "weather_service"
    original = spec_to_dict(parse_policies(source)[0])
    assert spec_to_dict(parse_policies(json_path)[0]) == original
    back = run("convert", json_path, "--to", "yaml")
    assert back.exit_code == 0
    yaml_path = tmp_path / "back.yaml"
    yaml_path.write_text(back.stdout)
    assert spec_to_dict(parse_policies(yaml_path)[0]) == original
    request = parse_request(
        {
            "principal": {"user_id": "a", "roles": ["user"]},
            "tool": "get_forecast",
            "args": {"days": 30},
        }
    )
    decisions = {load_policies(p).decide(request).rule for p in (source, json_path, yaml_path)}
    assert decisions == {"forecasts_at_most_seven_days"}


def test_convert_failures(tmp_path: Path) -> None:
    result = run("convert", _broken(tmp_path), "--to", "json")
    assert result.exit_code == 1 and f"{tmp_path / 'broken.yaml'}:9:" in result.stderr
    assert run("convert", tmp_path / "broken.yaml", "--to", "xml").exit_code == 1


# --------------------------------------------------------------------------- explain


def test_explain_allowed_exits_0(examples: Path) -> None:
    result = run(
        "explain",
        examples / "weather.yaml",
        "--user",
        "alice",
        "--role",
        "user",
        "--tool",
        "get_weather",
        "--arg",
        "city=Paris",
    )
    assert result.exit_code == 0, result.output
    assert result.output.startswith("ALLOWED by rule weather_service/users_read_weather")
    assert (
        "users_read_weather" in result.output.splitlines()[1] or "rules evaluated" in result.output
    )


def test_explain_denied_exits_2_and_says_why(examples: Path) -> None:
    result = run(
        "explain",
        examples / "weather.yaml",
        "--user",
        "alice",
        "--role",
        "user",
        "--tool",
        "get_forecast",
        "--arg",
        "days=30",
    )
    assert result.exit_code == 2, result.output
    assert result.output.startswith("DENIED by rule weather_service/forecasts_at_most_seven_days")
    night = run(
        "explain",
        examples / "weather.yaml",
        "--user",
        "ivan",
        "--role",
        "intern",
        "--tool",
        "get_weather",
        "--time",
        "2025-06-02T23:00:00+02:00",
    )
    assert night.exit_code == 2 and "reason: default" in night.output
    day = run(
        "explain",
        examples / "weather.yaml",
        "--user",
        "ivan",
        "--role",
        "intern",
        "--tool",
        "get_weather",
        "--time",
        "2025-06-02T11:00:00+02:00",
    )
    assert day.exit_code == 0 and "interns_in_office_hours" in day.output


def test_explain_json_and_request_file(tmp_path: Path, examples: Path) -> None:
    request = tmp_path / "request.json"
    request.write_text(json.dumps({"principal": {"user_id": "g"}, "resource": "weather://cities"}))
    result = run("explain", examples, "--request", request, "--format", "json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    text = json.dumps(data)
    assert "everyone_reads_city_list" in text and "true" in text


def test_explain_bad_input_exits_1(tmp_path: Path, examples: Path) -> None:
    policy = examples / "weather.yaml"
    no_component = run("explain", policy, "--user", "a")
    assert no_component.exit_code == 1
    assert "give exactly one of --tool, --resource or --prompt" in no_component.output
    assert run("explain").exit_code == 1  # usage errors are 1 here: 2 means denied
    bad_arg = run("explain", policy, "--tool", "t", "--arg", "novalue")
    assert bad_arg.exit_code == 1 and "KEY=VALUE" in bad_arg.output
    request = tmp_path / "r.yaml"
    request.write_text("tool: t\nexpect: allow\n")
    bad_request = run("explain", policy, "--request", request)
    assert bad_request.exit_code == 1 and f"{request}:2: expect: unknown key" in bad_request.output
    both = run("explain", policy, "--request", request, "--tool", "t")
    assert both.exit_code == 1
    broken = run("explain", _broken(tmp_path), "--tool", "t")
    assert broken.exit_code == 1 and f"{tmp_path / 'broken.yaml'}:7:" in broken.output


# --------------------------------------------------------------------------- test


def test_test_passes_on_the_examples(examples: Path) -> None:
    result = run("test", examples)
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[-1] == "15 passed, 0 failed, 0 broken in 2 suites"
    verbose = run("test", examples / "tests" / "seed.test.yaml", "-v")
    assert verbose.output.count("PASS ") == 5


def test_test_reports_a_failing_case_with_a_diff(examples: Path) -> None:
    suite = examples / "tests" / "weather.test.yaml"
    suite.write_text(
        suite.read_text().replace(
            "expect: {allowed: false, rule: nobody_else_deletes}",
            "expect: {allowed: true, rule: users_read_weather}",
        )
    )
    result = run("test", examples)
    assert result.exit_code == 1
    out = result.output
    assert f"FAIL {suite}:16 user cannot delete" in out
    assert "  allowed: expected true, got false" in out
    assert '  rule:    expected "users_read_weather", got "nobody_else_deletes"' in out
    assert "14 passed, 1 failed, 0 broken in 2 suites" in out
    data = json.loads(run("test", suite, "--format", "json").stdout)
    assert data["failed"] == 1
    (case,) = [c for s in data["suites"] for c in s["cases"] if not c["passed"]]
    assert case["name"] == "user cannot delete" and case["line"] == 16


def test_test_reports_a_malformed_suite(tmp_path: Path, examples: Path) -> None:
    suite = tmp_path / "bad.test.yaml"
    suite.write_text(
        f"policies: {examples / 'seed.yaml'}\ncases:\n  - name: x\n    tol: t\n    expect: allow\n"
    )
    result = run("test", suite, examples / "tests" / "seed.test.yaml")
    assert result.exit_code == 1
    assert (
        f"ERROR {suite}:4: cases[0].tol: unknown key 'tol' (did you mean `tool`?)" in result.output
    )
    assert "5 passed, 0 failed, 1 broken in 2 suites" in result.output
    empty = run("test", tmp_path / "nothing-here")
    assert empty.exit_code == 1


def test_import_registers_custom_conditions_before_loading(tmp_path: Path) -> None:
    (tmp_path / "vip.yaml").write_text(
        "name: vip\nrules:\n  - name: vips\n    effect: allow\n    tools: {names: [t]}\n"
        "    conditions: [{custom: cli_test_is_vip}]\n"
    )
    (tmp_path / "vip_conditions.py").write_text(
        "from guard.policy.conditions import register_condition\n"
        "register_condition('cli_test_is_vip', lambda ctx: ctx['principal']['user_id'] == 'vip')\n"
    )
    suite = tmp_path / "vip.test.yaml"
    suite.write_text(
        "policies: vip.yaml\ncases:\n"
        "  - {name: vip, principal: vip, tool: t, expect: {allowed: true, rule: vips}}\n"
        "  - {name: other, principal: joe, tool: t, expect: deny}\n"
    )
    unknown = run("validate", tmp_path / "vip.yaml")
    assert unknown.exit_code == 1 and "cli_test_is_vip" in unknown.stderr
    plugin = tmp_path / "vip_conditions.py"
    assert run("validate", tmp_path / "vip.yaml", "--import", plugin).exit_code == 0
    tested = run("test", suite, "--import", plugin)
    assert tested.exit_code == 0, tested.output
    assert "2 passed, 0 failed" in tested.output
    broken = run("test", suite, "--import", tmp_path / "missing.py")
    assert broken.exit_code == 1 and "--import" in broken.output


def test_test_on_a_policy_file_says_so(examples: Path) -> None:
    result = run("test", examples / "seed.yaml")
    assert result.exit_code == 1
    assert f"ERROR {examples / 'seed.yaml'}:2: this is a policy, not a test suite" in result.output
    assert "unknown key" not in result.output


def test_create_with_a_description(tmp_path: Path) -> None:
    description = 'Team: "ops" # not a comment'
    assert run("create", "svc", "-d", description).exit_code == 0
    (spec,) = parse_policies(tmp_path / "svc.yaml")
    assert spec.description == description


def test_test_coverage(tmp_path: Path, examples: Path) -> None:
    suite = examples / "tests" / "weather.test.yaml"
    text = suite.read_text()
    start = text.index("  - name: user asks a thirty-day forecast")
    suite.write_text(text[:start] + text[text.index("  - name: intern in office hours") :])
    result = run("test", suite, "--coverage")
    assert result.exit_code == 0, result.output
    assert (
        "  coverage: 5 of 6 rules decided a case; "
        "never deciding: weather_service/forecasts_at_most_seven_days"
    ) in result.output
    data = json.loads(run("test", suite, "--format", "json").stdout)
    assert data["suites"][0]["uncovered_rules"] == ["weather_service/forecasts_at_most_seven_days"]


def test_test_writes_junit_xml(tmp_path: Path, examples: Path) -> None:
    from xml.etree import ElementTree as ET

    suite = examples / "tests" / "seed.test.yaml"
    suite.write_text(suite.read_text().replace("expect: deny", "expect: allow", 1))
    broken = tmp_path / "broken.test.yaml"
    broken.write_text("policies: nowhere.yaml\ncases: []\n")
    report = tmp_path / "out" / "junit.xml"
    report.parent.mkdir()
    result = run("test", examples, broken, "--junit-xml", report)
    assert result.exit_code == 1
    root = ET.fromstring(report.read_text())
    suites = {s.get("name"): s for s in root.iter("testsuite")}
    seed = suites[str(suite)]
    assert (seed.get("tests"), seed.get("failures")) == ("5", "1")
    (failure,) = seed.iter("failure")
    assert failure.get("message") == "allowed: expected true, got false"
    error = next(suites[str(broken)].iter("error"))
    assert f"{broken}:1: policies:" in (error.text or "")


def test_format_is_idempotent_on_multi_document_and_json_files(
    tmp_path: Path, examples: Path
) -> None:
    seed = (examples / "seed.yaml").read_text()
    multi = tmp_path / "multi.yaml"
    multi.write_text(seed + "---\n" + seed.replace("my_service_policy", "other"))
    canonical = run("format", multi)
    assert canonical.exit_code == 0
    assert canonical.stdout.count("---\n") == 1
    multi.write_text(canonical.stdout)
    assert run("format", multi, "--check").exit_code == 0
    assert [s.name for s in parse_policies(multi)] == ["my_service_policy", "other"]
    as_json = tmp_path / "multi.json"
    assert run("convert", multi, "--to", "json", "-o", as_json).exit_code == 0
    assert isinstance(json.loads(as_json.read_text()), list)
    assert run("format", as_json, "--check").exit_code == 0
    assert run("validate", as_json).exit_code == 0


@pytest.mark.parametrize(
    "argv",
    [
        ["explian", "policies.yaml", "--tool", "x"],  # a mistyped command
        ["verify", "--bogus"],
        ["tail", "-n", "0"],
        ["retention", "--days", "0"],
        ["key", "new", "--bogus"],
    ],
)
def test_usage_errors_of_every_command_exit_1_not_explains_denied(argv: list[str]) -> None:
    """Exit 2 means "denied" (`explain`): a script must not read a typo as a denial
    (found in review: only the policy commands mapped usage errors to 1)."""
    result = run(*argv)
    assert result.exit_code == 1, result.output


def test_junit_xml_stays_parseable_with_control_characters_in_names(tmp_path: Path) -> None:
    """A case name (or a mismatch quoting a value) may hold characters XML 1.0 cannot
    carry at all (`\\x07`, `\\x1b`): written raw, CI's parser rejects the whole report."""
    from xml.etree import ElementTree as ET

    policy = tmp_path / "p.yaml"
    policy.write_text("name: p\nrules: []\n")
    suite = tmp_path / "bell.test.yaml"
    suite.write_text(
        'policies: p.yaml\ncases:\n  - name: "ring \\a the \\e[31m bell"\n'
        "    principal: {user_id: alice}\n    tool: t\n    expect: {allowed: true}\n"
    )
    report = tmp_path / "junit.xml"
    result = run("test", suite, "--junit-xml", report)
    assert result.exit_code == 1
    root = ET.fromstring(report.read_bytes())
    (case,) = root.iter("testcase")
    assert case.get("name") == "ring \\x07 the \\x1b[31m bell"
    assert next(case.iter("failure")) is not None
