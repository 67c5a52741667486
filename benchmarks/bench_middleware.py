"""Overhead of the guard on real in-memory MCP requests, next to mcp-auth-guard 1.0.0.

Run: `python3 benchmarks/bench_middleware.py [--rounds N]` (prints microseconds and
overheads; no assertions; about two minutes for the default 10 rounds: more rounds steady
the figures on a noisy machine). The same FastMCP server (100 tools, half tagged `safe`) is
measured bare; with an empty FastMCP `Middleware` (what FastMCP itself spends on running any
middleware: the floor no middleware goes below); with `GuardMiddleware` (fixed identity,
deciding, spans + metrics, decision records to a real store); with the guard minus telemetry
and records; with mcp-auth-guard's middleware on the same policy; and (lists only) with the
full guard deciding every list afresh, as a caller's first listing is (it otherwise gives a
repeated listing's answers again). Rounds of every configuration are interleaved so machine
noise hits them alike. Each figure is process CPU time per request (this process, all its
threads: the audit writer's work counts, and each round waits for the writer to write its
records to the hot file), the best of the rounds: on a shared machine wall time mostly
measures the neighbours. Converting the hot files to Parquet segments is measured at the
end, on a warm DuckDB connection as a running writer's converter has, and its CPU per
request added to the configurations that record.

`paired` is the median over rounds of each round's overhead against the bare server's
round measured next to it: steadier than the best rounds when the machine drifts.

Targets (issue 3): at most +5% on a `tools/call`, +10% on a `tools/list` of 100 tools.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import duckdb
from fastmcp import Client, FastMCP
from fastmcp.server.middleware import Middleware
from prometheus_client import CollectorRegistry

from guard import GuardMiddleware, Principal
from guard.audit import AuditLog
from guard.audit.segments import HOT_SUFFIX, convert_hot
from guard.telemetry import GuardTelemetry

N_TOOLS = 100
ROUNDS = 10  # the default; `--rounds`
# A round of calls lasts about one flush interval (0.5 s) and a round of lists queues about
# one batch (5,000 records): each round ends with the writer done with its records, so a
# configuration pays for its segments once per round, as a server would in steady state.
CALLS_PER_ROUND = 500
LISTS_PER_ROUND = 50

POLICY = """
name: bench
default_effect: deny
rules:
  - name: admin_all
    effect: allow
    agents: {roles: [admin]}
    tools: {patterns: ["*"]}
    actions: [list, call]
  - name: user_safe
    effect: allow
    agents: {roles: [user]}
    tools: {tags: [safe]}
    actions: [list, call]
"""


def server() -> FastMCP[Any]:
    mcp: FastMCP[Any] = FastMCP("bench")
    for i in range(N_TOOLS):

        def tool(text: str, i: int = i) -> str:
            return text

        mcp.tool(tool, name=f"tool_{i}", tags={"safe"} if i % 2 == 0 else {"internal"})
    return mcp


def seed_middleware(policy_file: Path) -> Any:
    from mcp_auth_guard import create_no_auth_middleware  # type: ignore[import-untyped]

    return create_no_auth_middleware(policies=str(policy_file))


async def per_request(
    fn: Callable[[], Awaitable[Any]], n: int, settle: Callable[[], Any] | None = None
) -> float:
    """CPU microseconds per request over `n` requests (no garbage collection meanwhile:
    when a collection lands would decide which configuration pays for it). `settle` runs
    inside the timing: the audit writer finishes the records of these requests, so their
    cost is charged here and not to whichever configuration is measured next."""
    gc.collect()
    gc.disable()
    try:
        t0 = time.process_time_ns()
        for _ in range(n):
            await fn()
        if settle is not None:
            settle()
        return (time.process_time_ns() - t0) / n / 1000
    finally:
        gc.enable()


async def main(rounds: int = ROUNDS) -> None:
    logging.disable(logging.INFO)  # mcp-auth-guard logs every decision at INFO
    workdir = Path(tempfile.mkdtemp(prefix="bench-mw-"))
    policy_file = workdir / "policy.yaml"
    policy_file.write_text(POLICY)
    # Every configuration must list all 100 tools: a filtered list is a smaller response,
    # which would flatter the guard. The seed's no-auth caller is `anonymous` with no roles.
    seed_policy = workdir / "seed.yaml"
    seed_policy.write_text(POLICY.replace("roles: [admin]", "user_id: [anonymous]"))
    alice = Principal("alice", roles=("admin",), auth_method="stdio")
    # DuckDB loads its JSON and Parquet code on first use, once per process: not a cost of
    # any request, so pay it here.
    warm = AuditLog(workdir / "warm")
    warm.append_outcome("warm-up", "ok", 1.0, None)
    warm.close()

    def guarded(*, telemetry: bool, audit: Path | None) -> tuple[FastMCP[Any], Any]:
        mw = GuardMiddleware(
            policy_file,
            principal=alice,
            # rows stay in the hot file during the rounds; converting them to Parquet is
            # measured at the end and charged to every request (see `conversion`)
            audit=AuditLog(audit, segment_rows=10**9, segment_age=1e9) if audit else None,
            telemetry=GuardTelemetry(registry=CollectorRegistry()) if telemetry else False,
        )
        mcp = server()
        mcp.add_middleware(mw)
        return mcp, mw

    full, records_only = "guard (id+decide+span+metrics+record)", "guard (id+decide+record)"
    bare = server()
    floor = server()  # FastMCP's own cost of running any middleware: no guard can go below
    floor.add_middleware(Middleware())
    seed = server()
    seed.add_middleware(seed_middleware(seed_policy))
    decide_only = guarded(telemetry=False, audit=None)[0]
    observed = guarded(telemetry=True, audit=None)[0]
    # Records configurations get one server for calls and one for lists: each store's
    # conversion cost is then charged to the requests that made its rows.
    with_records = {
        (name, kind): guarded(telemetry=name == full, audit=workdir / f"audit-{n}-{kind}")
        for n, name in enumerate((full, records_only))
        for kind in ("call", "list")
    }
    # The same full guard with every listing decided afresh, as a caller's first listing
    # (or one of a mounted server's or a proxy's components, new objects each time) is:
    # the answers it would give again are forgotten before each list.
    afresh = "guard (full, each list decided afresh)"
    with_records[(afresh, "list")] = guarded(telemetry=True, audit=workdir / "audit-afresh")
    servers: dict[str, dict[str, FastMCP[Any]]] = {
        "bare": {"call": bare, "list": bare},
        "an empty FastMCP Middleware (the floor)": {"call": floor, "list": floor},
        full: {k: with_records[(full, k)][0] for k in ("call", "list")},
        "guard (id+decide only)": {"call": decide_only, "list": decide_only},
        # The two observers apart, to see where the full configuration's cost comes from.
        "guard (id+decide+span+metrics)": {"call": observed, "list": observed},
        records_only: {k: with_records[(records_only, k)][0] for k in ("call", "list")},
        "mcp-auth-guard 1.0.0": {"call": seed, "list": seed},
        afresh: {"list": with_records[(afresh, "list")][0]},
    }
    afresh_mw = with_records[(afresh, "list")][1]

    async def list_afresh(client: Client[Any]) -> Any:
        afresh_mw._answered.clear()
        afresh_mw._seen.clear()
        return await client.list_tools()

    clients = {
        (name, kind): Client(mcp)
        for name, by_kind in servers.items()
        for kind, mcp in by_kind.items()
    }
    settle = {key: mw.audit.flush for key, (_, mw) in with_records.items()}
    calls: dict[str, list[float]] = {name: [] for name in servers if "call" in servers[name]}
    lists: dict[str, list[float]] = {name: [] for name in servers}
    for client in clients.values():
        await client.__aenter__()
    try:
        for (name, _), client in clients.items():  # warm up every path, check it works
            assert len(await client.list_tools()) == N_TOOLS, name
            assert (await client.call_tool("tool_0", {"text": "x"})).data == "x", name
        for _ in range(rounds):
            for name in servers:
                if name in calls:
                    calls[name].append(
                        await per_request(
                            lambda c=clients[(name, "call")]: c.call_tool("tool_0", {"text": "x"}),
                            CALLS_PER_ROUND,
                            settle.get((name, "call")),
                        )
                    )
                client = clients[(name, "list")]
                lists[name].append(
                    await per_request(
                        (lambda c=client: list_afresh(c)) if name == afresh
                        else (lambda c=client: c.list_tools()),
                        LISTS_PER_ROUND,
                        settle.get((name, "list")),
                    )
                )  # fmt: skip
    finally:
        for client in clients.values():
            await client.__aexit__(None, None, None)
    # Converting the hot files to Parquet segments, which a server does every 25,000 rows
    # (or 30 s) on its converter thread's long-lived DuckDB connection: copies of each
    # store's hot files are converted on one such warm connection, and the CPU per request
    # is added to each round of the configuration. (A fresh connection's first queries
    # cost a server that once, not once per segment.)
    for _, mw in with_records.values():
        mw.audit.flush()
    con = duckdb.connect(config={"threads": 1})  # as the writer's converter
    scratch = workdir / "conversion"
    conversion: dict[tuple[str, str], float] = {}
    for warm_up in (True, False):
        for (name, kind), (_, mw) in with_records.items():
            copies = []
            for table in ("decisions", "outcomes", "listings"):
                for hot in sorted((mw.audit.path / table).glob(f"*{HOT_SUFFIX}")):
                    (scratch / table).mkdir(parents=True, exist_ok=True)
                    copies.append((table, Path(shutil.copy(hot, scratch / table / hot.name))))
            t0 = time.process_time_ns()
            for table, copy in copies:
                convert_hot(con, copy.parent, table, copy, fsync=False)
            spent = time.process_time_ns() - t0
            shutil.rmtree(scratch)
            if not warm_up:
                requests = rounds * (CALLS_PER_ROUND if kind == "call" else LISTS_PER_ROUND) + 2
                conversion[(name, kind)] = spent / requests / 1000
    con.close()
    for _, mw in with_records.values():
        mw.close()
    for name, values in calls.items():
        values[:] = [v + conversion.get((name, "call"), 0.0) for v in values]
    for name, values in lists.items():
        values[:] = [v + conversion.get((name, "list"), 0.0) for v in values]

    for title, table in (
        ("tools/call (CPU µs per request, best round)", calls),
        (f"tools/list of {N_TOOLS} tools (CPU µs per request, best round)", lists),
    ):
        bare = min(table["bare"])
        print(f"\n## {title}")
        print(f"{'configuration':<42} {'µs':>10} {'overhead vs bare':>18} {'paired':>8}")
        for name, values in table.items():
            value = min(values)
            # each round against the bare server's round next to it: what the machine's
            # drift between rounds does to both cancels out
            paired = statistics.median(
                v / b - 1 for v, b in zip(values, table["bare"], strict=True)
            )
            print(
                f"{name:<42} {value:>10.1f} {100 * (value - bare) / bare:>+17.1f}%"
                f" {100 * paired:>+7.1f}%"
            )
    print(
        "(records: conversion of the hot files to Parquet included, µs per request: "
        + ", ".join(f"{n.split('(')[1][:-1]} {k} {v:.1f}" for (n, k), v in conversion.items())
        + ")"
    )
    sys.stdout.flush()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--rounds", type=int, default=ROUNDS, metavar="N",
        help=f"rounds of every configuration, interleaved (default {ROUNDS})",
    )  # fmt: skip
    opts = parser.parse_args()
    if opts.rounds < 1:
        parser.error("--rounds must be at least 1")
    asyncio.run(main(opts.rounds))
