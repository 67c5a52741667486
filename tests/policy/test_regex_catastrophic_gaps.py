"""Regexes that backtrack catastrophically but pass the load-time check.

README: `catastrophic_regex` rejects "nested or overlapping repeats ... which a crafted
argument turns into exponential or high-polynomial backtracking". Two gaps found in
review, in `guard/policy/_regex.py`:

1. `_separated()` lets an unbounded repeat skip the nested-repeat check when its body has a
   mandatory character none of its inner repeats can match. That is unsound when the body
   has a repeat on *both* sides of that character (`(?:[a-z]*\\.[a-z]*)*`): the letters
   between two dots can be split between one iteration's tail and the next one's head in
   k+1 ways, so the paths multiply per dot: exponential. 50 characters take seconds.
2. A sequence of unbounded repeats that can match the same text (`.*x.*x.*x.*x.*y`,
   `\\d*\\d*\\d*\\d*\\d*z`) is O(n**k): minutes on a few hundred characters.

Both loaded without a problem; `decide` then blocked on a short tool argument.
"""

from __future__ import annotations

import time

import pytest

from guard.errors import PolicyError
from guard.policy import AccessRequest, Principal, Resource, load_policies

EXPONENTIAL = [r"(?:[a-z]*\.[a-z]*)*$", r"(x*/x*)*", r"(?:a*ba*)*"]
POLYNOMIAL = [r"a*a*a*a*a*a*b", r".*x.*x.*x.*x.*y", r"\d*\d*\d*\d*\d*z"]


def _policy(pattern: str) -> str:
    return (
        "name: p\nrules:\n  - name: r\n    effect: allow\n    conditions:\n"
        f"      - {{field: tool.args.q, operator: regex, value: '{pattern}'}}\n"
    )


@pytest.mark.parametrize("pattern", EXPONENTIAL + POLYNOMIAL)
def test_catastrophic_regex_is_rejected_at_load(pattern: str) -> None:
    with pytest.raises(PolicyError) as info:
        load_policies(_policy(pattern))
    assert [p.code for p in info.value.problems] == ["catastrophic_regex"]


def test_a_regex_on_a_long_argument_is_unknown_and_fails_closed() -> None:
    """Two overlapping repeats (`.*a.*b`, allowed at load) still backtrack O(n**2) on a long
    failing argument: a regex runs on at most 4,096 characters; beyond, the condition is
    unknown (an allow rule does not apply, a deny rule does), and deciding stays quick."""
    allow = load_policies(_policy(r".*a.*b"))
    deny = load_policies(
        "name: p\ndefault_effect: allow\nrules:\n  - name: r\n    effect: deny\n"
        "    conditions:\n      - {field: tool.args.q, operator: regex, value: '.*a.*b'}\n"
    )
    arg = "a" * 200_000  # no `b`: a failing match
    request = AccessRequest(
        Principal("alice", ("user",)), Resource("tool", "t"), "call", args={"q": arg}
    )
    start = time.perf_counter()
    assert not allow.decide(request).allowed
    assert not deny.decide(request).allowed
    assert time.perf_counter() - start < 0.5
    short = AccessRequest(
        Principal("alice", ("user",)), Resource("tool", "t"), "call", args={"q": "xaxb"}
    )
    assert allow.decide(short).allowed and not deny.decide(short).allowed
