"""Policy test suites (`guard.policy.testing`): format, validation with lines, running."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from guard.errors import PolicyError
from guard.policy.model import Principal
from guard.policy.testing import load_suite, parse_request, run_suite

POLICY = """\
name: shop
default_effect: deny
rules:
  - name: staff_sell
    effect: allow
    agents: {roles: [staff]}
    tools: {names: [sell]}
  - name: no_big_refunds
    effect: deny
    priority: 200
    tools: {names: [refund]}
    conditions:
      - {field: tool.args.amount, operator: gt, value: 100}
  - name: staff_refund
    effect: allow
    agents: {roles: [staff]}
    tools: {names: [refund]}
"""


def _suite(tmp_path: Path, text: str, policy: str = POLICY) -> Path:
    (tmp_path / "shop.yaml").write_text(policy)
    path = tmp_path / "shop.test.yaml"
    path.write_text(text)
    return path


def _problems(path: Path) -> list[str]:
    with pytest.raises(PolicyError) as info:
        load_suite(path)
    return [str(p) for p in info.value.problems]


def test_example_suites_pass(examples: Path) -> None:
    suites = sorted(examples.glob("tests/*.test.yaml"))
    assert len(suites) >= 2
    for path in suites:
        result = run_suite(path)
        assert result.passed, result.report()
        assert len(result.results) >= 3
        assert result.policy_hash


def test_passing_and_failing_cases_are_told_apart(tmp_path: Path) -> None:
    path = _suite(
        tmp_path,
        """\
policies: shop.yaml
cases:
  - name: staff sell
    principal: {user_id: sam, roles: [staff]}
    tool: sell
    expect: {allowed: true, rule: staff_sell}
  - name: big refund (wrongly expected allowed)
    principal: {user_id: sam, roles: [staff]}
    tool: refund
    args: {amount: 500}
    expect: {allowed: true, rule: staff_refund}
  - name: small refund
    principal: {user_id: sam, roles: [staff]}
    tool: refund
    args: {amount: "20"}
    expect: {allowed: true, rule: shop/staff_refund, policy: shop, reason: rule}
""",
    )
    result = run_suite(path)
    assert [r.passed for r in result.results] == [True, False, True]
    assert not result.passed
    (failure,) = result.failures
    assert failure.case.line == 7
    assert {m.field: (m.expected, m.actual) for m in failure.mismatches} == {
        "allowed": (True, False),
        "rule": ("staff_refund", "no_big_refunds"),
    }
    report = result.report()
    assert f"FAIL {path}:7 big refund (wrongly expected allowed)" in report
    assert "allowed: expected true, got false" in report
    assert 'rule:    expected "staff_refund", got "no_big_refunds"' in report
    assert "2 passed, 1 failed" in report
    with pytest.raises(AssertionError, match="no_big_refunds"):
        result.assert_passed()


def test_requests_are_built_like_the_runtime_builds_them(tmp_path: Path) -> None:
    path = _suite(
        tmp_path,
        """\
policies: [shop.yaml]
time: 2025-01-06T08:00:00
cases:
  - name: a resource
    principal: {user_id: 7, roles: staff, claims: {org: acme}}
    resource: {uri: "shop://orders/1", tags: [pii]}
    expect: deny
  - name: a prompt, later
    prompt: summary
    time: "2025-01-07T09:30:00+01:00"
    expect: deny
  - name: a listing
    principal: bob
    tool: {name: sell, tags: [money], namespace: shop}
    action: list
    expect: deny
""",
    )
    resource_case, prompt_case, list_case = load_suite(path).cases
    r = resource_case.request
    assert r.principal == Principal(user_id="7", roles=("staff",), claims={"org": "acme"})
    assert (r.resource.kind, r.resource.name, r.resource.uri) == (
        "resource",
        "shop://orders/1",
        "shop://orders/1",
    )
    assert r.resource.tags == frozenset({"pii"})
    assert (r.action, r.method) == ("read", "resources/read")
    assert r.time == datetime(2025, 1, 6, 8, tzinfo=UTC)  # suite default, naive read as UTC
    p = prompt_case.request
    assert not p.principal.authenticated and p.principal.user_id is None
    assert (p.resource.kind, p.action, p.method) == ("prompt", "get", "prompts/get")
    assert p.time is not None and p.time.isoformat() == "2025-01-07T09:30:00+01:00"
    t = list_case.request
    assert (t.resource.kind, t.resource.namespace, t.action, t.method) == (
        "tool",
        "shop",
        "list",
        "tools/list",
    )
    assert t.principal.user_id == "bob" and t.principal.authenticated


def test_every_problem_is_reported_with_its_line(tmp_path: Path) -> None:
    path = _suite(
        tmp_path,
        """\
policies: shop.yaml
cases:
  - name: typo in a key
    principal: {user_id: a, rolse: [staff]}
    tool: sell
    expect: allow
  - name: no expectation
    tool: sell
  - name: two components
    tool: sell
    prompt: p
    expect: {allowed: yes please}
  - name: bad clock
    tool: sell
    time: next tuesday
    expect: {allowed: false, rulle: x}
  - name: typo in a key
    tool: sell
    expect: deny
""",
    )
    problems = _problems(path)
    s = str(path)
    assert (
        f"{s}:4: cases[0].principal.rolse: unknown key 'rolse' (did you mean `roles`?)" in problems
    )
    assert any(p.startswith(f"{s}:7: cases[1].expect: missing `expect`") for p in problems)
    assert any(p.startswith(f"{s}:9: cases[2]: name exactly one of") for p in problems)
    assert any(p.startswith(f"{s}:12: cases[2].expect.allowed:") for p in problems)
    assert any(p.startswith(f"{s}:15: cases[3].time:") for p in problems)
    assert any(p.startswith(f"{s}:16: cases[3].expect.rulle: unknown key") for p in problems)
    assert (
        any(p.startswith(f"{s}:17: cases[4].name: duplicate case name") for p in problems) is False
    )
    assert len(problems) == 6


def test_duplicate_case_names_are_refused(tmp_path: Path) -> None:
    path = _suite(
        tmp_path,
        """\
policies: shop.yaml
cases:
  - {name: same, tool: sell, expect: deny}
  - {name: same, tool: sell, expect: deny}
""",
    )
    (problem,) = _problems(path)
    assert problem.startswith(
        f"{path}:4: cases[1].name: duplicate case name 'same' (first at line 3)"
    )


def test_suite_level_problems(tmp_path: Path) -> None:
    path = _suite(tmp_path, "policies: missing.yaml\ncase: []\n")
    problems = _problems(path)
    assert f"{path}:2: case: unknown key 'case' (did you mean `cases`?)" in problems
    assert any("missing.yaml" in p and p.startswith(f"{path}:1: policies:") for p in problems)
    assert any("missing `cases`" in p for p in problems)
    bad_yaml = _suite(tmp_path, "policies: shop.yaml\ncases: [\n")
    (problem,) = _problems(bad_yaml)
    assert problem.startswith(f"{bad_yaml}:3: not valid YAML")
    with pytest.raises(PolicyError, match="cannot read suite"):
        load_suite(tmp_path / "nope.test.yaml")


def test_policy_paths_read_like_the_loaders(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`~` is the home directory, as everywhere a policy path is read; a path that names
    no file (`''`, `.`: the suite's own directory, suites and all) is refused plainly."""
    home = tmp_path / "home"
    (home / "pol").mkdir(parents=True)
    (home / "pol" / "shop.yaml").write_text(POLICY)
    monkeypatch.setenv("HOME", str(home))
    cases = "cases:\n  - {name: c, tool: sell, principal: {roles: [staff]}, expect: allow}\n"
    suites = tmp_path / "suites"
    suites.mkdir()
    path = suites / "a.test.yaml"
    path.write_text("policies: ~/pol/shop.yaml\n" + cases)
    assert run_suite(path).passed
    for empty in ("''", "."):
        path.write_text(f"policies: {empty}\n" + cases)
        problems = _problems(path)
        assert any("names no policy file" in p for p in problems), problems


def test_policy_problems_name_the_policy_file(tmp_path: Path) -> None:
    broken = POLICY.replace("names: [sell]", "nmes: [sell]")
    path = _suite(tmp_path, "policies: shop.yaml\ncases: []\n", policy=broken)
    problems = _problems(path)
    assert any(p.startswith(f"{tmp_path / 'shop.yaml'}:7:") and "nmes" in p for p in problems)


def test_inline_policy_and_its_problems_point_into_the_suite(tmp_path: Path) -> None:
    good = tmp_path / "inline.test.yaml"
    good.write_text("""\
policies:
  name: inline
  rules:
    - {name: all, effect: allow, tools: {patterns: ["*"]}}
cases:
  - {name: anything goes, principal: u, tool: x, expect: {allowed: true, rule: all}}
  - {name: anonymous, tool: x, expect: {allowed: false, reason: unauthenticated}}
""")
    result = run_suite(good)
    assert result.passed, result.report()
    bad = tmp_path / "bad.test.yaml"
    bad.write_text("""\
policies:
  name: inline
  rules:
    - name: all
      effect: allow
      tools: {paterns: ["*"]}
cases: []
""")
    problems = _problems(bad)
    assert any(
        p.startswith(f"{bad}:6: policies.rules[0].tools") and "paterns" in p for p in problems
    ), problems


def test_parse_request_from_a_plain_mapping() -> None:
    request = parse_request(
        {
            "principal": {"user_id": "a", "roles": ["x"]},
            "tool": "t",
            "args": {"n": 1},
            "time": "2025-01-01T00:00:00Z",
        }
    )
    assert request.resource.name == "t" and request.args == {"n": 1}
    assert request.time == datetime(2025, 1, 1, tzinfo=UTC)
    with pytest.raises(PolicyError) as info:
        parse_request({"expect": "allow", "resource": {"kind": "widget", "name": "w"}})
    text = [str(p) for p in info.value.problems]
    assert "<request>: expect: unknown key 'expect' (did you mean `except`?)" not in text
    assert any(p.startswith("<request>: expect: unknown key 'expect'") for p in text)
    assert any("resource.kind: unknown kind 'widget'" in p for p in text)
    with pytest.raises(PolicyError, match="exactly one of `tool`, `resource` or `prompt`"):
        parse_request({"tool": "t", "prompt": "p"})


@pytest.mark.timeout(30)
def test_alias_bomb_in_args_costs_its_written_size(tmp_path: Path) -> None:
    levels = ['      a0: &a0 ["x","x","x","x","x","x","x","x","x","x"]']
    for i in range(1, 9):  # 10**9 strings once expanded
        refs = ",".join([f"*a{i - 1}"] * 10)
        levels.append(f"      a{i}: &a{i} [{refs}]")
    body = "\n".join(levels)
    path = _suite(
        tmp_path,
        f"""\
policies: shop.yaml
cases:
  - name: bomb
    principal: {{user_id: sam, roles: [staff]}}
    tool: sell
    args:
{body}
    expect: {{allowed: true, rule: staff_sell}}
""",
    )
    result = run_suite(path)
    assert result.passed, result.report()
    args = result.results[0].case.request.args
    assert args["a8"][0] is args["a8"][1]  # shared, not copied


def test_a_key_written_twice_is_refused_but_merge_overrides_are_not(tmp_path: Path) -> None:
    path = _suite(
        tmp_path,
        """\
policies: shop.yaml
cases:
  - name: staff sell
    principal: &staff {user_id: sam, roles: [staff]}
    tool: sell
    expect: allow
    expect: deny
  - name: merged principal, overridden
    principal: {<<: *staff, user_id: kim}
    tool: sell
    expect: allow
""",
    )
    (problem,) = _problems(path)
    assert problem == f"{path}:7: cases[0].expect: duplicate key 'expect' (first at line 6)"
    path.write_text(path.read_text().replace("    expect: deny\n", ""))
    _, second = load_suite(path).cases
    assert second.request.principal.user_id == "kim"
    assert second.request.principal.roles == ("staff",)


def test_coverage_lists_rules_that_decided_nothing(tmp_path: Path) -> None:
    path = _suite(
        tmp_path,
        """\
policies: shop.yaml
cases:
  - {name: sell, principal: {user_id: s, roles: [staff]}, tool: sell, expect: allow}
""",
    )
    suite = load_suite(path)
    result = suite.run()
    assert result.rules == ("shop/staff_sell", "shop/no_big_refunds", "shop/staff_refund")
    assert result.uncovered == ("shop/no_big_refunds", "shop/staff_refund")
    (case,) = suite.cases
    assert suite.run_case(case).decision.rule == "staff_sell"


def test_a_suite_without_cases_is_malformed(tmp_path: Path) -> None:
    """`cases: []` passed, and `mcp-guard test` exited 0 having decided nothing: a suite
    emptied by mistake kept CI green. It is refused as `policies` naming no policy is."""
    path = _suite(tmp_path, "policies: shop.yaml\ncases: []\n")
    (problem,) = _problems(path)
    assert problem.startswith(f"{path}:2: cases: `cases` lists no case")


def test_a_key_written_twice_inside_a_case_or_inline_policy_is_refused(tmp_path: Path) -> None:
    """Duplicates were refused in a case's own keys (and anywhere in an `explain --request`
    file) but not in its `args`, `claims`, `context` or `meta`, nor in an inline policy:
    YAML read there kept the first value silently, so `amount: 20, amount: 500` tested a
    refund of 20 that a live JSON request (its last value wins) is not, and an inline
    rule written `effect: allow, effect: deny` allowed what the same text in a policy
    file is refused for."""
    path = _suite(
        tmp_path,
        """\
policies:
  - shop.yaml
  - name: extra
    rules:
      - {name: r, effect: allow, effect: deny, tools: {names: [x]}}
cases:
  - name: refund
    principal: {user_id: sam, roles: [staff], claims: {team: a, team: b}}
    tool: {name: refund, meta: {m: 1, m: 2}}
    args: {amount: 20, amount: 500}
    context: {transport: stdio, transport: http}
    expect: allow
""",
    )
    problems = _problems(path)
    assert problems == [
        f"{path}:5: policies[1].rules[0].effect: duplicate key 'effect' (first at line 5)",
        f"{path}:8: cases[0].principal.claims.team: duplicate key 'team' (first at line 8)",
        f"{path}:9: cases[0].tool.meta.m: duplicate key 'm' (first at line 9)",
        f"{path}:10: cases[0].args.amount: duplicate key 'amount' (first at line 10)",
        f"{path}:11: cases[0].context.transport: duplicate key 'transport' (first at line 11)",
    ]


def test_a_rule_named_with_a_slash_is_expected_by_its_name(tmp_path: Path) -> None:
    """Rule names may hold `/`. An expected `rule` with a `/` was only ever compared with
    `policy/rule`, so `rule: read/write` failed against the very rule `read/write` that
    decided (got "shop/read/write"); the policy-qualified form still works."""
    policy = "name: shop\nrules:\n  - {name: read/write, effect: allow, tools: {names: [t]}}\n"
    cases = ("read/write", "shop/read/write")
    text = "policies: shop.yaml\ncases:\n" + "".join(
        f"  - {{name: c{i}, principal: u, tool: t, expect: {{allowed: true, rule: {rule}}}}}\n"
        for i, rule in enumerate(cases)
    )
    result = run_suite(_suite(tmp_path, text, policy))
    assert result.passed, result.report()
    wrong = _suite(tmp_path, text.replace("rule: read/write", "rule: read/only"), policy)
    (failure,) = run_suite(wrong).failures
    assert [str(m) for m in failure.mismatches] == [
        'rule: expected "read/only", got "shop/read/write"'
    ]
