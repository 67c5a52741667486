"""The malformed-policy corpus: every file must fail to load with the problems it declares.

Each file in `malformed/` states what it must produce in comment lines such as

    # expect: code=unknown_key line=7 field=rules[0].tools.pattern hint="patterns"

`code`, `line` and `field` must match exactly (`field=` with no value means "no field");
`hint` and `message` must be contained in the problem's hint or message. A file may hold
several `expect` lines: every one of them must be reported by one load.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from guard.errors import PolicyError, PolicyProblem
from guard.policy.loader import load_policies, parse_policies

CORPUS = Path(__file__).parent / "malformed"
FILES = sorted(CORPUS.glob("*.yaml"))


def _expectations(path: Path) -> list[dict[str, str]]:
    found = []
    for line in path.read_text().splitlines():
        if line.startswith("# expect:"):
            words = shlex.split(line.removeprefix("# expect:"))
            found.append(dict(word.split("=", 1) for word in words))
    return found


def _problems(source: object) -> tuple[PolicyProblem, ...]:
    with pytest.raises(PolicyError) as caught:
        parse_policies(source)
    return caught.value.problems


def _matches(problem: PolicyProblem, want: dict[str, str]) -> bool:
    for key, value in want.items():
        if key == "code" and problem.code != value:
            return False
        if key == "line" and problem.line != int(value):
            return False
        if key == "field" and problem.field != (value or None):
            return False
        if key in ("hint", "message") and value not in (getattr(problem, key) or ""):
            return False
    return True


def test_corpus_is_large_and_every_file_declares_its_error() -> None:
    assert len(FILES) >= 30
    for path in FILES:
        assert _expectations(path), f"{path.name} has no `# expect:` line"


@pytest.mark.parametrize("path", FILES, ids=[p.stem for p in FILES])
def test_malformed_policy_reports_expected_problems(path: Path) -> None:
    with pytest.raises(PolicyError) as caught:
        parse_policies(path)
    problems = caught.value.problems
    for want in _expectations(path):
        assert any(_matches(p, want) for p in problems), (
            f"{path.name}: expected {want}, got:\n" + "\n".join(repr(p) for p in problems)
        )
    # every problem names the file it came from, and the error message lists them all
    assert all(p.source == str(path) for p in problems)
    assert all(str(p) in str(caught.value) for p in problems)


def test_several_problems_in_one_file_are_all_reported() -> None:
    path = CORPUS / "many_problems.yaml"
    with pytest.raises(PolicyError) as caught:
        parse_policies(path)
    assert len(caught.value.problems) == len(_expectations(path)) == 6
    assert str(caught.value).startswith("6 problems in policy:")


def test_corpus_loads_again_once_fixed() -> None:
    """The corpus is not failing for an unrelated reason: a fixed file loads."""
    text = (CORPUS / "unknown_tools_key.yaml").read_text().replace("pattern:", "patterns:")
    [spec] = parse_policies(text)
    assert spec.rules[0].tools is not None
    assert spec.rules[0].tools.patterns == ("get_*",)


_EVERY_KEY = """\
name: every_key
description: d
version: "1"
default_effect: deny
combining: first_match
tags: [t]
created_by: me
rules:
  - name: r
    description: d
    effect: allow
    priority: 5
    agents: {user_id: [u], roles: [r], agent_id: [a], patterns: ["*"]}
    tools: {names: [n], patterns: ["*"], namespaces: [s], tags: [t]}
    resources: {uris: ["u://x"], patterns: ["u://*"], schemes: [u], tags: [t]}
    resource_templates: {uri_templates: ["u://{x}"], names: [n], patterns: ["*"], tags: [t]}
    prompts: {names: [n], patterns: ["*"], tags: [t]}
    actions: [call]
    conditions:
      - {field: request.time.hour, operator: lt, value: 17, timezone: UTC}
      - {custom: c, params: [1]}
"""
_KEY = re.compile(r"(?:^\s*(?:- )?|[{,]\s*)([a-z_]+):")
_FORMS = {"field", "custom"}  # renaming these changes what a condition is: another error


def _key_sites() -> list[tuple[int, str, int]]:
    """(line, key, column) of every key in `_EVERY_KEY`."""
    sites = []
    for number, line in enumerate(_EVERY_KEY.splitlines(), 1):
        for m in _KEY.finditer(line):
            if m.group(1) not in _FORMS:
                sites.append((number, m.group(1), m.start(1)))
    return sites


def test_every_key_of_the_format_is_in_the_reference_policy() -> None:
    [spec] = parse_policies(_EVERY_KEY)  # it is valid
    assert spec.rules[0].prompts is not None
    sites = _key_sites()
    assert len(sites) == 42 and len({key for _, key, _ in sites}) == 30


@pytest.mark.parametrize("site", _key_sites(), ids=lambda s: f"{s[0]}:{s[1]}")
def test_a_misspelt_key_anywhere_is_reported_at_its_line_with_a_hint(
    site: tuple[int, str, int],
) -> None:
    number, key, column = site
    lines = _EVERY_KEY.splitlines(keepends=True)
    typo = key[:-1] + "x"  # `patterns` -> `patternx`
    line = lines[number - 1]
    lines[number - 1] = line[:column] + typo + line[column + len(key) :]
    problems = _problems("".join(lines))
    assert any(
        p.code == "unknown_key"
        and p.line == number
        and p.field is not None
        and p.field.endswith(typo)
        and p.hint == f"did you mean `{key}`?"
        for p in problems
    ), problems


# loader: `exists` / `not_exists` take no value (found in review: it was silently ignored)


def test_exists_with_a_value_is_rejected() -> None:
    # Meant as "the token is missing"; loads and means "the token is present" instead.
    text = (
        "name: p\nrules:\n  - name: no_token_no_entry\n    effect: deny\n    conditions:\n"
        "      - {field: tool.args.token, operator: exists, value: false}\n"
    )
    with pytest.raises(PolicyError) as err:
        load_policies(text)
    assert [(p.code, p.line) for p in err.value.problems] == [("bad_value", 6)]


@pytest.mark.parametrize("operator", ["exists", "not_exists"])
def test_exists_on_a_field_no_resolver_knows_is_rejected(operator: str) -> None:
    # `tool.arg.password` (for `tool.args.password`) is never present: a deny rule
    # `exists` on it never fired, an allow rule `not_exists` on it always held. Other
    # operators make such a field unknown (fail closed); presence has no unknown.
    text = (
        f"name: p\nrules:\n  - name: r\n    effect: deny\n    conditions:\n"
        f"      - {{field: tool.arg.password, operator: {operator}}}\n"
    )
    with pytest.raises(PolicyError) as err:
        load_policies(text)
    [problem] = err.value.problems
    assert (problem.code, problem.line) == ("bad_value", 6)
    assert "unknown field 'tool.arg.password'" in problem.message
    assert "tool.args." in problem.message  # the hint names what was meant


# --- 5. loader: an unknown custom condition is reported on the rule's line, undocumented code


def test_unknown_custom_condition_names_its_own_line_and_a_documented_code() -> None:
    text = (
        "name: p\nrules:\n  - name: r\n    effect: deny\n    conditions:\n"
        "      - {custom: no_such_condition}\n"
    )
    with pytest.raises(PolicyError) as err:
        load_policies(text)
    [problem] = err.value.problems
    documented = {"yaml_syntax", "yaml_tag", "yaml_alias", "duplicate_key", "non_string_key",
                  "empty", "not_a_mapping", "unknown_key", "wrong_type", "missing_field",
                  "bad_value", "unknown_operator", "bad_condition", "empty_group", "bad_regex",
                  "catastrophic_regex", "duplicate_rule", "duplicate_policy",
                  "combining_conflict", "unreadable", "too_large", "bad_source"}  # fmt: skip
    assert problem.line == 6, problem
    assert problem.code in documented, problem
