"""Policy loading time for files of 1,000 and 10,000 rules.

Run: `python3 benchmarks/bench_load.py`. Target: a 10,000-rule file parses and validates
(`parse_policies`: line numbers, every check) in a couple of seconds; it should cost about
what reading the YAML at all costs. Baselines, same file, same run: `yaml.load` with
libyaml's `CSafeLoader` (no validation, no lines: the floor), and mcp-auth-guard 1.0.0's
`PolicyLoader.load_from_file` (pure-Python `safe_load` plus pydantic). `load_policies` adds
compiling the `PolicySet` and is shown for reference.
"""

from __future__ import annotations

import logging
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import yaml  # noqa: E402

from benchmarks._harness import header, row  # noqa: E402
from guard.policy.loader import load_policies, parse_policies  # noqa: E402


def policy_text(n: int) -> str:
    rule = (
        "  - name: r{i}\n"
        "    effect: {effect}\n"
        "    priority: {prio}\n"
        "    agents: {{roles: [role{role}]}}\n"
        "    tools: {{names: [tool_{i}], patterns: ['get_{i}_*']}}\n"
        "    actions: [call, list]\n"
        "    conditions:\n"
        "      - {{field: tool.args.n, operator: lt, value: {i}}}\n"
    )
    rules = "".join(
        rule.format(i=i, effect="deny" if i % 3 == 0 else "allow", prio=i % 50, role=i % 7)
        for i in range(n)
    )
    return "name: big\ndefault_effect: deny\nrules:\n" + rules


def _libyaml(path: Path) -> Any:
    return yaml.load(path.read_text(), Loader=yaml.CSafeLoader)


def best_of(fn: Callable[[], Any], runs: int) -> float:
    """Median wall time in seconds over `runs` runs (loading is not on the hot path)."""
    laps = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        laps.append(time.perf_counter() - t0)
    return statistics.median(laps)


def main() -> None:
    logging.disable(logging.CRITICAL)  # the seed logs every load
    try:
        from mcp_auth_guard.policy.loader import PolicyLoader
    except ImportError:
        PolicyLoader = None
    header("policy loading (baseline: libyaml safe_load, mcp-auth-guard)", unit="ms")
    with tempfile.TemporaryDirectory() as tmp:
        for n, runs in ((1_000, 5), (10_000, 3)):
            path = Path(tmp) / f"rules_{n}.yaml"
            path.write_text(policy_text(n))
            [spec] = parse_policies(path)
            assert len(spec.rules) == n
            floor = best_of(partial(_libyaml, path), runs)
            ours = best_of(partial(parse_policies, path), runs)
            row(f"parse_policies, {n:,} rules vs libyaml", ours * 1e3, floor * 1e3)
            if PolicyLoader is not None:
                seed = best_of(partial(PolicyLoader.load_from_file, path), runs)
                row(f"parse_policies, {n:,} rules vs mcp-auth-guard", ours * 1e3, seed * 1e3)
            full = best_of(partial(load_policies, path), runs)
            row(f"load_policies (parse + compile), {n:,} rules", full * 1e3)


if __name__ == "__main__":
    main()
