"""The malformed-policy corpus: every file must fail to load with the problems it declares.

Each file in `malformed/` states what it must produce in comment lines such as

    # expect: code=unknown_key line=7 field=rules[0].tools.pattern hint="patterns"

`code`, `line` and `field` must match exactly (`field=` with no value means "no field");
`hint` and `message` must be contained in the problem's hint or message. A file may hold
several `expect` lines: every one of them must be reported by one load.
"""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest

from guard.errors import PolicyError, PolicyProblem
from guard.policy.loader import parse_policies

CORPUS = Path(__file__).parent / "malformed"
FILES = sorted(CORPUS.glob("*.yaml"))


def _expectations(path: Path) -> list[dict[str, str]]:
    found = []
    for line in path.read_text().splitlines():
        if line.startswith("# expect:"):
            words = shlex.split(line.removeprefix("# expect:"))
            found.append(dict(word.split("=", 1) for word in words))
    return found


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
