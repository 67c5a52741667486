"""Compiling a policy set was quadratic in the number of distinct literal action names (found
in review).

`PolicySet.__init__` (guard/policy/policyset.py, the `for action in sorted(actions)` loop)
builds one bucket per (variant, literal action) by matching *every* rule's actions against
*every* literal action and then restricting the whole index (`_Bucket.only`): O(rules x
actions). A file where each rule names its own action (`actions: [a17]`) compiles in
~9 s for 8,000 rules (390 KB), and a file under the 5 MiB limit (~100,000 rules) takes
many minutes: a hang at startup or on `reload_policies`, not a load error.
The same number of rules keyed by tool names compiles in well under a second.
"""

from __future__ import annotations

import time

from guard.policy import load_policies

N = 6000


def _timed(text: str) -> float:
    start = time.perf_counter()
    load_policies(text)
    return time.perf_counter() - start


def test_distinct_actions_compile_about_as_fast_as_distinct_names() -> None:
    head = "name: p\nrules:\n"
    by_name = head + "".join(
        f"- {{name: r{i}, effect: allow, tools: {{names: [t{i}]}}}}\n" for i in range(N)
    )
    by_action = head + "".join(
        f"- {{name: r{i}, effect: allow, actions: [a{i}]}}\n" for i in range(N)
    )
    baseline = _timed(by_name)
    slow = _timed(by_action)
    assert slow < max(5 * baseline, 1.0), (
        f"{N} rules with distinct actions: {slow:.1f}s vs {baseline:.2f}s with distinct names"
    )
