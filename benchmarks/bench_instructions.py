"""The guard's overhead on in-memory MCP requests in machine instructions, not seconds.

Run: `python3 benchmarks/bench_instructions.py [--calls N] [--lists N] [--only call|list]
[--gc] [--keep DIR]`
(needs valgrind). The same servers as `bench_middleware.py` (100 tools) run under
`valgrind --tool=callgrind` with counting switched off; each process warms up, then counts
only its measured requests (all threads: the audit writer's encoding, hashing and writing
of the records count, and the requests end by waiting for the writer to write them).
Instruction counts hardly depend on what else the machine is doing, so these ratios hold
where `bench_middleware.py`'s CPU times swing by half between runs (repeated runs here
agreed within ~1% of a request).

What it does not see: cache misses and branch mispredictions (an instruction is an
instruction), the conversion of hot files to Parquet (`bench_middleware.py` measures that:
~9 µs a call), garbage collection (off while counting, as there), and SHA-NI: valgrind
does not emulate it, so OpenSSL hashes the records with plain vector code, about ten times
the instructions the CPU runs (~45,000 a call): each row says how many of a request's
instructions OpenSSL ran beyond the bare server's, and the overhead without them. Each
configuration runs in its own process, all at once (on 2 cores, about six minutes;
`--only` about three).

Counted, a request runs ~65 times slower than natively, so whatever the guard does by the
clock would happen ~65 times as often per request: the writer flushes when told to, and
the lookup cache's time to live is scaled by that factor (`VALGRIND_SLOWDOWN`).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

# How much slower a counted request runs under callgrind than natively (measured here:
# an in-memory call took 65.6 ms counted, 1.0 ms natively): what the guard's clock-driven
# caches are scaled by, so that they expire as often per request as at full speed.
VALGRIND_SLOWDOWN = 65
EMPTY = "an empty FastMCP Middleware (the floor)"
# the full guard deciding every listing as a caller's first (lists only), as in
# `bench_middleware.py`: it otherwise gives a repeated listing's answers again
AFRESH = "guard (full), each list afresh"
CONFIGS = (
    "bare",
    EMPTY,
    "guard (id+decide+span+metrics+record)",
    "guard (id+decide only)",
    "guard (id+decide+span+metrics)",
    "guard (id+decide+record)",
    "mcp-auth-guard 1.0.0",
    AFRESH,
)


async def _child(config: str, kind: str, n: int, collect: bool = False) -> None:
    """Warm up, say READY (with this process's pid), wait for a line on stdin (the parent
    has switched counting on), run `n` requests, and leave at once."""
    from fastmcp import Client
    from fastmcp.server.middleware import Middleware
    from prometheus_client import CollectorRegistry

    from benchmarks.bench_middleware import POLICY, seed_middleware, server
    from guard import GuardMiddleware, Principal
    from guard.audit import AuditLog
    from guard.telemetry import GuardTelemetry

    logging.disable(logging.INFO)  # mcp-auth-guard logs every decision at INFO
    work = Path(tempfile.mkdtemp(prefix="bench-instr-"))
    policy = work / "policy.yaml"
    policy.write_text(POLICY)
    mcp = server()
    audit = None
    guard = None
    if config.startswith("guard"):
        if "record" in config or config == AFRESH:
            # The writer flushes when told to (after the requests counted), not every
            # 0.5 s of wall time: under valgrind, ~65 times slower, a timed flush would come
            # every few requests and charge them ~65 times its real share.
            audit = AuditLog(
                work / "audit", segment_rows=10**9, segment_age=1e9, flush_interval=3600
            )
        spans = "span" in config or config == AFRESH
        telemetry = GuardTelemetry(registry=CollectorRegistry()) if spans else False
        guard = GuardMiddleware(
            policy,
            principal=Principal("alice", roles=("admin",), auth_method="stdio"),
            audit=audit,
            telemetry=telemetry,
            # The same clock correction: a counted call takes ~65 times its real time
            # here, so the default 1 s would look the tool up again every ~15 calls
            # instead of every ~1,000 (~80,000 instructions a call, 2% of the bare
            # call, that a real server does not spend). Scaled, it expires as often
            # per call as it does at full speed.
            lookup_ttl=VALGRIND_SLOWDOWN * 1.0,
        )
        mcp.add_middleware(guard)
    elif config == EMPTY:  # FastMCP's own cost of running any middleware
        mcp.add_middleware(Middleware())
    elif config.startswith("mcp-auth-guard"):  # every tool listed, as for the others
        seed = work / "seed.yaml"
        seed.write_text(POLICY.replace("roles: [admin]", "user_id: [anonymous]"))
        mcp.add_middleware(seed_middleware(seed))

    async with Client(mcp) as client:

        async def request() -> None:
            if kind == "call":
                assert (await client.call_tool("tool_0", {"text": "x"})).data == "x"
            else:
                if config == AFRESH:
                    assert guard is not None
                    guard._answered.clear()
                    guard._seen.clear()
                assert len(await client.list_tools()) == 100

        for _ in range(30):
            await request()
        if audit is not None:
            audit.flush()
        # No garbage collection while counting, as in `bench_middleware.py`: one full
        # collection (~15 million instructions here) landing in one configuration's window
        # and not another's would swamp the difference measured. `--gc` leaves it on, to
        # see what the garbage each configuration makes costs (collections come by counts
        # of allocations: over enough requests, each pays for its own).
        gc.collect()
        if not collect:
            gc.disable()
        print("READY", os.getpid(), flush=True)
        sys.stdin.readline()
        for _ in range(n):
            await request()
        if audit is not None:
            audit.flush()
    sys.stdout.flush()
    os._exit(0)  # nothing after the requests counts: no clean-up


def _output(work: Path, config: str, kind: str) -> Path:
    """Where callgrind writes the counts of `config` on `kind` requests."""
    return work / f"callgrind.{CONFIGS.index(config)}.{kind}"


def _count(config: str, kind: str, n: int, work: Path, collect: bool) -> subprocess.Popen[str]:
    out = _output(work, config, kind)
    cmd = [
        "valgrind", "--tool=callgrind", "--instr-atstart=no", f"--callgrind-out-file={out}",
        sys.executable, __file__, "--child", config, kind, str(n), *(["--gc"] if collect else []),
    ]  # fmt: skip
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    return subprocess.Popen(
        cmd, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip


def _collected(proc: subprocess.Popen[str]) -> int:
    assert proc.stdout is not None and proc.stdin is not None and proc.stderr is not None
    line = proc.stdout.readline()
    if not line.startswith("READY"):
        proc.kill()
        raise SystemExit(f"child failed:\n{line}{proc.stderr.read()}")
    pid = line.split()[1]
    subprocess.run(["callgrind_control", "-i", "on", pid], check=True, capture_output=True)
    proc.stdin.write("go\n")
    proc.stdin.flush()
    _, err = proc.communicate()
    for text in err.splitlines():
        if "Collected :" in text:
            return int(text.rsplit(":", 1)[1])
    raise SystemExit(f"no count from callgrind:\n{err}")


def _in_openssl(out: Path) -> int:
    """Instructions the callgrind output `out` counted in OpenSSL's libcrypto: the records'
    SHA-256 (the requests hash nothing else)."""
    annotated = subprocess.run(
        ["callgrind_annotate", "--inclusive=no", "--threshold=100", str(out)],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    total = 0
    for line in annotated.splitlines():
        count = line.split("(", 1)[0].strip().replace(",", "")
        if "libcrypto" in line and count.isdigit():
            total += int(count)
    return total


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=500)
    parser.add_argument("--lists", type=int, default=40)
    parser.add_argument("--only", choices=("call", "list"), help="measure one kind of request")
    parser.add_argument(
        "--gc", action="store_true", help="leave garbage collection on while counting"
    )
    parser.add_argument(
        "--keep", type=Path, metavar="DIR",
        help="keep callgrind's outputs in DIR (callgrind.<config>.<kind>; read them with "
        "callgrind_annotate)",
    )  # fmt: skip
    parser.add_argument("--child", nargs=3, metavar=("CONFIG", "KIND", "N"))
    opts = parser.parse_args()
    if opts.child:
        config, kind, n = opts.child
        asyncio.run(_child(config, kind, int(n), opts.gc))
        return
    if shutil.which("valgrind") is None or shutil.which("callgrind_control") is None:
        raise SystemExit("valgrind is not installed (Debian: apt-get install valgrind)")
    work = opts.keep or Path(tempfile.mkdtemp(prefix="bench-instr-"))
    work.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    try:
        runs = {
            (config, kind, n): _count(config, kind, n, work, opts.gc)
            for kind, n in (("call", opts.calls), ("list", opts.lists))
            if opts.only in (None, kind)
            for config in CONFIGS
            if kind == "list" or config != AFRESH
        }
        per: dict[tuple[str, str], float] = {
            (config, kind): _collected(proc) / n for (config, kind, n), proc in runs.items()
        }
        sha = {
            (config, kind): _in_openssl(_output(work, config, kind)) / n for config, kind, n in runs
        }
    finally:
        if opts.keep is None:
            shutil.rmtree(work, ignore_errors=True)
    for kind, title in (("call", "tools/call"), ("list", "tools/list of 100 tools")):
        if ("bare", kind) not in per:
            continue
        bare = per[("bare", kind)]
        print(f"\n## {title} (instructions per request, callgrind)")
        print(f"{'configuration':<42} {'instructions':>14} {'overhead vs bare':>18}"
              f" {'of it SHA-256':>14} {'without it':>11}")  # fmt: skip
        for config in CONFIGS:
            if (config, kind) not in per:
                continue
            value, hashing = per[(config, kind)], sha[(config, kind)] - sha[("bare", kind)]
            over, rest = 100 * (value - bare) / bare, 100 * (value - hashing - bare) / bare
            print(f"{config:<42} {value:>14,.0f} {over:>+17.1f}% {hashing:>14,.0f} {rest:>+10.1f}%")
    print(
        "(SHA-256: the instructions counted in OpenSSL, the records' hashing, which valgrind"
        " runs without the CPU's SHA instructions; natively a 1.3 KB row hashes in ~1 µs,"
        " about a tenth of the instructions counted)"
    )
    collection = "garbage collection on" if opts.gc else "no garbage collection"
    print(
        f"({opts.calls} calls, {opts.lists} lists each, {collection}; "
        f"{time.perf_counter() - t0:.0f} s)"
    )


if __name__ == "__main__":
    main()
