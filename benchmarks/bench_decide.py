"""Decision latency at 10, 100, 1,000 and 10,000 rules: `PolicySet.decide` against
mcp-auth-guard 1.0.0's `PolicyEngine.evaluate` on the same policies and requests.

Run: `python3 benchmarks/bench_decide.py` (prints median and p99 µs and the ratio;
targets: ≤ 3 µs median at every size, ≥ 100x faster than mcp-auth-guard at 1,000 rules).
It also prints what building each policy set costs, since a reload pays it once:
`PolicySet.from_specs` (compiling and indexing) and `load_policies` of the same dict (which
also validates and keeps a canonical text for the hash), beside mcp-auth-guard building its
`PolicyEngine` from the dict (pydantic validation and a sort).

The policies are "realistic" in shape: most rules name tools exactly, some use name
patterns, some apply to a role whatever the tool, and a few carry a condition. The
requests hit an exact-name rule, a pattern rule, a role-only rule and no rule at all (the
default, where mcp-auth-guard scans every rule). Both engines must agree on every request
(checked before timing). mcp-auth-guard's coroutine is driven without an event loop so
asyncio's cost is not counted against it.

A decision that evaluated no condition is kept in `PolicySet`'s memo and served again
for the same principal ids, component and action. The main rows clear the memo before
every call (its cost, about 0.03 µs, is counted against us), so they measure the index;
a row per size gives the memo hit, what a repeated request costs.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks._harness import drive, header, row, time_call  # noqa: E402
from guard.policy import (  # noqa: E402
    AccessRequest,
    PolicySet,
    Principal,
    Resource,
    load_policies,
    parse_policies,
)

SIZES = (10, 100, 1_000, 10_000)
ROLES = 40


def policy_dict(n: int) -> dict[str, Any]:
    """One policy of `n` rules in mcp-auth-guard's format (which ours loads unchanged)."""
    rules: list[dict[str, Any]] = []
    for i in range(n):
        role = f"role_{i % ROLES}"
        kind = i % 20
        rule: dict[str, Any] = {"name": f"r{i}", "effect": "deny" if i % 7 == 0 else "allow"}
        if kind == 0:  # role-wide rule: any tool
            rule["agents"] = {"roles": [f"ops_{i}"]}
        elif kind in (1, 2):  # a family of tools
            rule["agents"] = {"roles": [role]}
            rule["tools"] = {"patterns": [f"svc{i}_*"]}
        elif kind == 3:  # exact tool with an argument condition
            rule["agents"] = {"roles": [role]}
            rule["tools"] = {"names": [f"tool_{i}"]}
            rule["conditions"] = [{"field": "tool.args.limit", "operator": "lte", "value": 100}]
        else:
            rule["agents"] = {"roles": [role]}
            rule["tools"] = {"names": [f"tool_{i}", f"tool_{i}_v2"]}
        rule["priority"] = 100 + (i % 3) * 10
        rules.append(rule)
    return {"name": f"bench_{n}", "default_effect": "deny", "rules": rules}


def requests(n: int) -> list[tuple[str, tuple[str, ...], str, dict[str, Any]]]:
    """(user, roles, tool, args): exact hit, pattern hit, role-only hit, miss, condition."""
    exact = max(i for i in range(n) if i % 20 >= 4)
    pattern = max(i for i in range(n) if i % 20 in (1, 2))
    ops = max(i for i in range(n) if i % 20 == 0)
    cond = max((i for i in range(n) if i % 20 == 3), default=exact)
    return [
        ("alice", (f"role_{exact % ROLES}", "staff"), f"tool_{exact}", {}),
        ("bob", (f"role_{pattern % ROLES}",), f"svc{pattern}_delete", {"id": 3}),
        ("carol", (f"ops_{ops}",), "anything", {}),
        ("dave", ("role_1", "staff"), "no_such_tool", {"q": "x"}),
        ("erin", (f"role_{cond % ROLES}",), f"tool_{cond}", {"limit": 50}),
    ]


def seed_engine(policy: dict[str, Any]) -> Any:
    from mcp_auth_guard.policy.engine import PolicyEngine
    from mcp_auth_guard.schemas.policy import PolicyConfig

    return PolicyEngine([PolicyConfig(**policy)])


def seed_call(engine: Any, user: str, roles: tuple[str, ...], tool: str, args: dict[str, Any]):
    from mcp_auth_guard.schemas.auth import AuthContext
    from mcp_auth_guard.schemas.resource import ResourceContext, ToolResource

    auth = AuthContext(user_id=user, roles=list(roles), authenticated=True)
    res = ResourceContext(
        resource_type="tools",
        resource=ToolResource(name=tool, arguments=args),
        action="call",
        method="tools/call",
    )
    return lambda: drive(engine.evaluate(auth, res))


def _best_ms(fn: Callable[[], Any], rounds: int = 3) -> float:
    best = float("inf")
    for _ in range(rounds):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best * 1000


def main() -> None:
    logging.disable(logging.CRITICAL)  # mcp-auth-guard logs at debug; keep output clean
    results = []
    for n in SIZES:
        policy = policy_dict(n)
        ours = load_policies(policy)
        seed = seed_engine(policy)
        our_times, seed_times, p99s, hits = [], [], [], []
        for user, roles, tool, args in requests(n):
            request = AccessRequest(Principal(user, roles), Resource("tool", tool), "call", args)
            decision = ours.decide(request)
            seed_fn = seed_call(seed, user, roles, tool, args)
            theirs = seed_fn()
            if (decision.allowed, decision.rule) != (theirs.allowed, theirs.matched_rule):
                raise SystemExit(f"disagreement at {n} rules on {tool}: {decision} vs {theirs}")
            t = time_call(
                lambda r=request, d=ours.decide, clear=ours._memo.clear: (clear(), d(r)),
                samples=20_000,
                max_seconds=1.0,
            )
            hit = time_call(lambda r=request, d=ours.decide: d(r), samples=20_000, max_seconds=0.5)
            s = time_call(seed_fn, samples=2_000, warmup=3, max_seconds=0.8)
            our_times.append(t.median_us)
            p99s.append(t.p99_us)
            seed_times.append(s.median_us)
            if ours.decide(request).errors == () and not any(
                v is None for _, v in ours._memo.values()
            ):
                hits.append(hit.median_us)
        results.append((n, our_times, p99s, seed_times, hits))
    header("building the policy set (ms, best of 3); baseline = mcp-auth-guard 1.0.0", "ms")
    for n in SIZES:
        policy = policy_dict(n)
        specs = parse_policies(policy)
        seed_ms = _best_ms(lambda p=policy: seed_engine(p))
        row(
            f"PolicySet.from_specs, {n:,} rules",
            _best_ms(lambda s=specs: PolicySet.from_specs(s)),
            seed_ms,
        )
        row(
            f"load_policies(dict), {n:,} rules",
            _best_ms(lambda p=policy: load_policies(p)),
            seed_ms,
        )
    header("decision latency, median over 5 requests (µs); baseline = mcp-auth-guard 1.0.0")
    for n, ours_t, p99s, seed_t, hits in results:
        med = sorted(ours_t)[len(ours_t) // 2]
        base = sorted(seed_t)[len(seed_t) // 2]
        row(f"decide, {n:,} rules (median)", med, base)
        row(f"decide, {n:,} rules (worst request median)", max(ours_t), max(seed_t))
        row(f"decide, {n:,} rules (worst request p99)", max(p99s))
        if hits:
            row(f"decide, {n:,} rules (memo hit, worst of {len(hits)} requests)", max(hits), base)


if __name__ == "__main__":
    main()
