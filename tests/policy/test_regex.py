"""The load-time regex check: catastrophic patterns are refused, everyday ones pass."""

from __future__ import annotations

import pytest

from guard import PolicyError, load_policies
from guard.policy._regex import regex_problem

# Each backtracks exponentially in Python's `re` on a crafted non-matching input.
CATASTROPHIC = [
    r"(a+)+$",
    r"(a|a)*",
    r"(.*)*",
    r"(?:a|a)+$",
    r"(a|aa)*$",
    r"(a|a?)+",
    r"(.|a)*",
    r"(a|b|ab)*c",
    r"^(\d+)*$",
    r"([a-z]+)*$",
    r"(\w+\s?)+$",
    r"^(\w+\s?)*$",
    r"(x+x+)+y",
    r"((ab)*)*",
    r"(a{1,3})+",
    r"(a+b?)+",
    r"([^/]+/?)+$",
    r"(/[^a]+)+",
    r"(?=a)(a+)+$",
]

# What policy authors write: anchored names, paths, e-mail and URL shapes, SQL guards.
EVERYDAY = [
    r"^admin_.*",
    r"^/srv/[a-z]+$",
    r"^/srv/data(/[^/]+)*$",
    r"^[^/]+(/[^/]+)*$",
    r"[a-z]+(\.[a-z]+)*",
    r"(\w+\.)+com",
    r"^(https?://)?([\w-]+\.)+[\w-]+(/[\w\- ./?%&=]*)?$",
    r"^[a-z0-9._%+-]+@[a-z0-9.-]+\.[a-z]{2,}$",
    r"(\d+,)*\d+",
    r"^(\s*\w+\s*,)*\s*\w+\s*$",
    r"^([a-zA-Z0-9]+\s)*[a-zA-Z0-9]+$",
    r"(?i)^select\b(?!.*\b(insert|update|delete|drop)\b).*$",
    r"^(get|list|read)_[a-z_]+$",
    r"(a|b)*",
    r"(foo|bar)+",
    r"(a|ab)*c",
    r"(ab)+",
    r"(a+){2}",
    r"(a+)++",
    r"(?>a+)+",
    r"\d{3}-\d{4}",
    r"^(\.\./)+",
    r".*\.\..*",
    r"",
]


@pytest.mark.parametrize("pattern", CATASTROPHIC)
def test_catastrophic_patterns_are_refused(pattern: str) -> None:
    found = regex_problem(pattern)
    assert found is not None and found[0] == "catastrophic_regex", pattern
    assert repr(pattern) in found[1] and "backtrack" in found[2]


@pytest.mark.parametrize("pattern", EVERYDAY)
def test_everyday_patterns_pass(pattern: str) -> None:
    assert regex_problem(pattern) is None


@pytest.mark.parametrize(
    ("pattern", "why"),
    [
        ("(a", "missing )"),
        ("[z-a]", "bad character range"),
        ("a**", "multiple repeat"),
        ("(?P<x>a)(?P<x>b)", "redefinition"),
    ],
)
def test_invalid_patterns_say_why(pattern: str, why: str) -> None:
    found = regex_problem(pattern)
    assert found is not None and found[0] == "bad_regex" and why in found[1]


# catastrophic regexes in bounded repeats are rejected at load (found in review)


@pytest.mark.parametrize(
    "pattern",
    [
        # exponential: overlapping alternatives under a fixed repeat under `*`
        r"(?:(?:a|aa){2})*",
        # exponential in the bound: overlapping alternatives in a bounded repeat
        r"(a|a?){20}",
        # a realistic e-mail check: variable repeat inside a bounded repeat (~n^9)
        r"(?:[a-z0-9]+\.?){1,10}@example\.com",
    ],
)
def test_catastrophic_regex_is_rejected_at_load(pattern: str) -> None:
    text = (
        "name: p\nrules:\n  - name: r\n    effect: deny\n    conditions:\n"
        f"      - {{field: tool.args.q, operator: regex, value: '{pattern}'}}\n"
    )
    with pytest.raises(PolicyError) as err:
        load_policies(text)
    assert [p.code for p in err.value.problems] == ["catastrophic_regex"]
