"""Policy test suites: YAML files of requests with the decision each must get.

A suite names the policies it tests and lists cases; `run_suite` decides every case with
the same `PolicySet.decide` the middleware uses (there is one evaluator), and reports each
case whose decision differs from what was expected, field by field.

```yaml
policies: ../weather.yaml       # path(s) relative to this file, or an inline policy
cases:
  - name: users read the weather
    principal: {user_id: alice, roles: [user]}
    tool: get_weather           # or resource: URI, prompt: NAME, or resource: {kind: ...}
    args: {city: Paris}
    expect: {allowed: true, rule: user_weather}
  - name: interns cannot delete
    principal: {user_id: ivan, roles: [intern]}
    tool: delete_city
    expect: deny
```

```python
from guard.policy.testing import run_suite

def test_weather_policy():
    run_suite("policies/tests/weather.test.yaml").assert_passed()
```
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import yaml

from guard.errors import PolicyError, PolicyProblem
from guard.policy._request_form import (
    REQUEST_KEYS,
    LineMap,
    Problems,
    load_yaml,
    parse_request,
    parse_request_node,
    parse_time,
    plain,
)
from guard.policy._yaml import MAX_ALIAS_NODES
from guard.policy.model import AccessRequest, Decision

if TYPE_CHECKING:
    from guard.policy.policyset import PolicySet

__all__ = [
    "CaseResult",
    "Expectation",
    "Mismatch",
    "Suite",
    "SuiteCase",
    "SuiteResult",
    "load_suite",
    "parse_request",
    "run_suite",
]

_SUITE_KEYS: Final = ("policies", "cases", "description", "time")
_CASE_KEYS: Final = ("name", *REQUEST_KEYS, "expect")
_EXPECT_KEYS: Final = ("allowed", "rule", "policy", "reason")


# --------------------------------------------------------------------------- results


@dataclass(frozen=True, slots=True)
class Expectation:
    """What a case expects; `None` fields are not checked.

    `rule` may be `rule_name` or `policy_name/rule_name`.
    """

    allowed: bool
    rule: str | None = None
    policy: str | None = None
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class SuiteCase:
    """One request of a suite and the decision it must get."""

    name: str
    request: AccessRequest
    expect: Expectation
    line: int | None = None


@dataclass(frozen=True, slots=True)
class Mismatch:
    """One field of a decision that differs from the expectation."""

    field: str
    expected: Any
    actual: Any

    def __str__(self) -> str:
        return f"{self.field}: expected {_show(self.expected)}, got {_show(self.actual)}"


@dataclass(frozen=True, slots=True)
class CaseResult:
    """A case, the decision it got, and how that differs from what was expected."""

    case: SuiteCase
    decision: Decision
    mismatches: tuple[Mismatch, ...] = ()

    @property
    def passed(self) -> bool:
        return not self.mismatches


@dataclass(frozen=True, slots=True)
class SuiteResult:
    """Every case of one suite, decided.

    Example:
        ```python
        result = run_suite("policies/tests/weather.test.yaml")
        assert result.passed, result.report()
        ```
    """

    path: str
    results: tuple[CaseResult, ...]
    policy_hash: str = ""
    rules: tuple[str, ...] = ()  # every `policy/rule` of the policies under test

    @property
    def passed(self) -> bool:
        return all(r.passed for r in self.results)

    @property
    def uncovered(self) -> tuple[str, ...]:
        """Rules (`policy/rule`) that decided no case: behaviour the suite does not pin down."""
        deciding = {_qualified(r.decision) for r in self.results}
        return tuple(rule for rule in self.rules if rule not in deciding)

    @property
    def failures(self) -> tuple[CaseResult, ...]:
        return tuple(r for r in self.results if not r.passed)

    def report(self, *, verbose: bool = False) -> str:
        """A readable report: each failing case with expected vs actual, then a summary."""
        lines: list[str] = []
        for r in self.results:
            where = f"{self.path}:{r.case.line}" if r.case.line else self.path
            if r.passed:
                if verbose:
                    lines.append(f"PASS {where} {r.case.name}")
                continue
            lines.append(f"FAIL {where} {r.case.name}")
            width = max(len(m.field) for m in r.mismatches) + 1
            for m in r.mismatches:
                label = m.field + ":"
                lines.append(
                    f"  {label:<{width}} expected {_show(m.expected)}, got {_show(m.actual)}"
                )
            d = r.decision
            verdict = "allowed" if d.allowed else "denied"
            errors = f"; errors: {'; '.join(d.errors)}" if d.errors else ""
            lines.append(
                f"  decision: {verdict} (reason {d.reason}, rule {_show(_qualified(d))}){errors}"
            )
        failed = len(self.failures)
        lines.append(f"{self.path}: {len(self.results) - failed} passed, {failed} failed")
        return "\n".join(lines)

    def assert_passed(self) -> None:
        """Raise `AssertionError` with the report when any case failed (for pytest)."""
        if not self.passed:
            raise AssertionError(self.report())


def _show(value: Any) -> str:
    """YAML-like rendering: `true`, `"rule_name"`, `(none)`."""
    if value is None:
        return "(none)"
    return json.dumps(value) if isinstance(value, str | bool) else str(value)


def _qualified(d: Decision) -> str | None:
    if d.rule is None:
        return None
    return f"{d.policy}/{d.rule}" if d.policy else d.rule


# --------------------------------------------------------------------------- suites


@dataclass(frozen=True, slots=True)
class Suite:
    """A loaded suite: the policy set under test and its cases."""

    path: str
    policies: PolicySet
    cases: tuple[SuiteCase, ...]

    def run(self) -> SuiteResult:
        """Decide every case and compare with its expectation."""
        results = tuple(self.run_case(case) for case in self.cases)
        specs = getattr(self.policies, "policies", ())
        rules = tuple(f"{spec.name}/{rule.name}" for spec in specs for rule in spec.rules)
        return SuiteResult(self.path, results, str(getattr(self.policies, "hash", "")), rules)

    def run_case(self, case: SuiteCase) -> CaseResult:
        """Decide one case, e.g. from a pytest test parametrized over `suite.cases`.

        Example:
            ```python
            import pytest
            from guard.policy.testing import load_suite

            suite = load_suite("policies/tests/weather.test.yaml")

            @pytest.mark.parametrize("case", suite.cases, ids=lambda c: c.name)
            def test_weather(case):
                result = suite.run_case(case)
                assert result.passed, result.mismatches
            ```
        """
        decision = self.policies.decide(case.request)
        return CaseResult(case, decision, _compare(case.expect, decision))


def _compare(expect: Expectation, d: Decision) -> tuple[Mismatch, ...]:
    out: list[Mismatch] = []
    if d.allowed is not expect.allowed:
        out.append(Mismatch("allowed", expect.allowed, d.allowed))
    # a rule's own name may hold `/` too: either form of the deciding rule is its name
    if expect.rule is not None and expect.rule not in (d.rule, _qualified(d)):
        actual = _qualified(d) if "/" in expect.rule else d.rule
        out.append(Mismatch("rule", expect.rule, actual))
    if expect.policy is not None and d.policy != expect.policy:
        out.append(Mismatch("policy", expect.policy, d.policy))
    if expect.reason is not None and d.reason != expect.reason:
        out.append(Mismatch("reason", expect.reason, d.reason))
    return tuple(out)


def run_suite(path: str | Path) -> SuiteResult:
    """Load the suite at `path` and decide all its cases.

    Raises:
        PolicyError: the suite or a policy it names is malformed; every problem is listed
            with file, line and field.

    Example:
        ```python
        result = run_suite("examples/policies/tests/weather.test.yaml")
        result.assert_passed()
        ```
    """
    return load_suite(path).run()


def load_suite(path: str | Path) -> Suite:
    """Read and validate a suite file and load the policies it names (see `run_suite`)."""
    from guard.policy.loader import read_input_text

    suite_path = Path(path)
    out = Problems(str(suite_path))
    try:
        text = read_input_text(suite_path)
    except (OSError, UnicodeDecodeError) as exc:
        why = "not UTF-8" if isinstance(exc, UnicodeDecodeError) else exc.strerror or exc
        out.add(f"cannot read suite: {why}", code="unreadable")
        raise PolicyError(out) from None
    try:
        data = load_yaml(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        out.add(
            f"not valid YAML: {getattr(exc, 'problem', None) or exc}", line=line, code="yaml_syntax"
        )
        raise PolicyError(out) from None
    if not isinstance(data, LineMap):
        out.add("a suite is a mapping with `policies` and `cases`", line=1)
        raise PolicyError(out)
    if "rules" in data and "cases" not in data:
        hint = "to decide one request against a policy, use `mcp-guard explain`"
        out.add("this is a policy, not a test suite", data, None, None, hint, "not_a_suite")
        raise PolicyError(out)
    out.check_keys(data, _SUITE_KEYS, "")
    for key in ("policies", "cases"):
        if key not in data:
            out.add(f"missing `{key}`", data, None, key, code="missing_key")
    suite_time = parse_time(data, "time", out) if "time" in data else None
    policy_set = _load_policy_set(data, suite_path, out) if "policies" in data else None
    cases: list[SuiteCase] = []
    raw_cases = data.get("cases")
    if "cases" in data and not isinstance(raw_cases, list):
        out.add("`cases` must be a list", data, "cases")
    elif raw_cases == []:  # a suite that decides nothing would pass, whatever the policy
        hint = "e.g. `- {name: ..., principal: alice, tool: get_weather, expect: allow}`"
        out.add("`cases` lists no case", data, "cases", "cases", hint, "missing_key")
    elif isinstance(raw_cases, list):
        first_seen: dict[str, int | None] = {}
        for i, raw in enumerate(raw_cases):
            case = _parse_case(raw, f"cases[{i}]", data, out, suite_time)
            if case is None:
                continue
            if case.name in first_seen:
                msg = f"duplicate case name {case.name!r} (first at line {first_seen[case.name]})"
                out.add(msg, line=case.line, where=f"cases[{i}].name", code="duplicate_name")
            first_seen.setdefault(case.name, case.line)
            cases.append(case)
    if out or policy_set is None:
        raise PolicyError(out)
    return Suite(out.source, policy_set, tuple(cases))


def _load_policy_set(data: LineMap, suite_path: Path, out: Problems) -> PolicySet | None:
    from guard.policy.loader import load_policies, parse_policies

    raw = data["policies"]
    items = raw if isinstance(raw, list) else [raw]
    specs: list[Any] = []
    before = len(out)
    for i, item in enumerate(items):
        where = f"policies[{i}]" if isinstance(raw, list) else "policies"
        if isinstance(item, str):
            if item.strip() in ("", "."):  # the suite's own directory: its suites too
                msg = f"policy path {item!r} names no policy file or directory"
                out.add(msg, data, "policies", where, code="not_found")
                continue
            try:  # `~` is the home directory, as wherever policies are read
                target = suite_path.parent / Path(item).expanduser()
            except RuntimeError:  # `~nosuchuser/...`
                target = suite_path.parent / item
            if not target.exists():
                msg = f"policy path {item!r} does not exist (paths are relative to the suite file)"
                out.add(msg, data, "policies", where, code="not_found")
                continue
            source: Any = target
        elif isinstance(item, LineMap):
            memo: dict[int, int] = {}
            if _expanded_size(item, memo) - len(memo) > MAX_ALIAS_NODES:
                # the policy loader bounds aliases in YAML text, but validating a dict
                # copies every shared part: a few lines could expand to billions of nodes
                msg = f"YAML aliases in this policy expand beyond {MAX_ALIAS_NODES:,} nodes"
                hint = "this looks like an alias bomb ('billion laughs'); write the data out"
                out.add(msg, data, "policies", where, hint, "yaml_alias")
                continue
            out.check_nested(item, where)
            source = plain(item)
        else:
            out.add(
                "each entry of `policies` is a path or an inline policy", data, "policies", where
            )
            continue
        try:
            specs.extend(parse_policies(source))
        except PolicyError as exc:
            out.extend(_relocate(p, item, where, out.source) for p in exc.problems)
    if not items and len(out) == before:
        out.add("`policies` names no policy", data, "policies", "policies", code="missing_key")
    if len(out) > before or not specs:
        return None
    try:
        return load_policies(specs)
    except PolicyError as exc:  # problems across policies (duplicate names, ...)
        out.extend(exc.problems)
        return None


def _expanded_size(value: Any, memo: dict[int, int]) -> int:
    """Nodes in `value` once YAML aliases (shared objects) are expanded, in linear time;
    `memo` ends up holding each distinct node once."""
    key = id(value)
    if key not in memo:
        children = value.values() if isinstance(value, dict) else value
        nested = isinstance(value, dict | list)
        memo[key] = 1 + (sum(_expanded_size(v, memo) for v in children) if nested else 0)
    return memo[key]


def _relocate(p: PolicyProblem, item: Any, where: str, source: str) -> PolicyProblem:
    """Point a problem of an inline policy (source `<dict>`) at its line in the suite."""
    if not isinstance(item, LineMap) or not p.source.startswith("<"):
        return p
    fld = p.field or ""
    field_path = f"{where}.{fld}" if fld else where
    return PolicyProblem(
        p.message, source, _line_of(item, fld) or p.line, field_path, p.hint, p.code
    )


def _line_of(node: Any, path: str) -> int | None:
    """The line of the deepest node along a dotted path like `rules[2].tools.pattern`."""
    line = node.line if isinstance(node, LineMap) else None
    for part in path.replace("[", ".[").split("."):
        if not part:
            continue
        if part.startswith("[") and isinstance(node, list):
            idx = part[1:-1]
            if not idx.isdigit() or int(idx) >= len(node):
                break
            node = node[int(idx)]
        elif isinstance(node, LineMap) and part in node:
            line = node.lines.get(part, line)
            node = node[part]
        else:
            break
        if isinstance(node, LineMap):
            line = node.line
    return line


# --------------------------------------------------------------------------- cases


def _parse_case(
    raw: Any, where: str, suite: LineMap, out: Problems, default_time: datetime | None
) -> SuiteCase | None:
    if not isinstance(raw, LineMap):
        out.add("each case is a mapping", suite, "cases", where)
        return None
    before = len(out)
    out.check_keys(raw, _CASE_KEYS, where)
    name = raw.get("name", where)
    if not isinstance(name, str):
        out.add("`name` must be a string", raw, "name", f"{where}.name")
    request = parse_request_node(raw, where, out, default_time)
    expect = None
    if "expect" in raw:
        expect = _parse_expect(raw, where, out)
    else:
        hint = "e.g. `expect: {allowed: true, rule: NAME}` or `expect: deny`"
        out.add("missing `expect`", raw, None, f"{where}.expect", hint, "missing_key")
    if len(out) > before or request is None or expect is None:
        return None
    return SuiteCase(str(name), request, expect, raw.line)


def _parse_expect(raw: LineMap, where: str, out: Problems) -> Expectation | None:
    value = raw["expect"]
    where = f"{where}.expect"
    if value in ("allow", "deny"):
        return Expectation(allowed=value == "allow")
    if not isinstance(value, LineMap):
        out.add("`expect` is `allow`, `deny` or a mapping with `allowed`", raw, "expect", where)
        return None
    before = len(out)
    out.check_keys(value, _EXPECT_KEYS, where)
    allowed = value.get("allowed")
    if not isinstance(allowed, bool):
        code = "missing_key" if allowed is None else "wrong_type"
        out.add(
            "`expect.allowed` must be true or false",
            value,
            "allowed",
            f"{where}.allowed",
            code=code,
        )
    for key in ("rule", "policy", "reason"):
        if value.get(key) is not None and not isinstance(value[key], str):
            out.add(f"`expect.{key}` must be a string", value, key, f"{where}.{key}")
    if len(out) > before:
        return None
    return Expectation(bool(allowed), value.get("rule"), value.get("policy"), value.get("reason"))
