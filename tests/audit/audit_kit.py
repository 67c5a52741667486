"""Helpers for the audit tests: decision events and subprocess scripts."""

from __future__ import annotations

import errno
import os
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from guard._ids import uuid7
from guard.events import DecisionEvent
from guard.policy.model import AccessRequest, Decision, Principal, Resource

REPO = Path(__file__).resolve().parents[2]

# credentials the tests use; the scans prove they never land anywhere
RAW_API_KEY = "sk-live-audit-7f3a9c2e4b1d8f6a0c5e"
BEARER = "Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhbGljZSIsImV4cCI6OTk5OTk5OTk5OX0.c2lnbmF0dXJl"
JWT_SECRET = "audit-test-hs256-secret-0123456789abcdef"


# The start of a subprocess script (argv[1]: the store): the store's disk is full
# (`failing[0]`), and its first 10 records went to the spill file; the script goes on to fill
# the local disk too (`resource.setrlimit(resource.RLIMIT_FSIZE, ...)`).
SPILLING_ON_A_FULL_DISK = r"""
import errno, resource, sys, time
from audit_kit import event
from guard.audit import AuditLog

failing = [True]
def hook(table, rows):  # the store's disk is full
    if failing[0]:
        raise OSError(errno.ENOSPC, "No space left on device")

log = AuditLog(sys.argv[1], write_hook=hook, flush_interval=3600)
for i in range(10):
    log.append(event(i))
log.flush()  # 10 rows spilled
"""


def bearer_token(sub: str = "bob") -> str:
    """A real HS256 JWT the audit test server accepts."""
    import time

    import jwt

    claims = {"sub": sub, "roles": ["user"], "exp": int(time.time()) + 3600}
    return str(jwt.encode(claims, JWT_SECRET, algorithm="HS256"))


ALICE = Principal(
    "alice", ("user", "analyst"), auth_method="api_key", key_id="k:1a2b3c", claims={"team": "x"}
)
WEATHER = Resource("tool", "get_weather", tags={"public", "read"}, namespace="wx", version="2")
ALLOW = Decision(
    True, "rule", rule="users-read", policy="main", matched_rules=("main/users-read",),
    policy_hash="ph1", rules_evaluated=3, eval_us=4.5,
)  # fmt: skip


def event(
    i: int = 0,
    *,
    args: dict[str, Any] | None = None,
    principal: Principal = ALICE,
    resource: Resource = WEATHER,
    decision: Decision = ALLOW,
    shadow: Decision | None = None,
    method: str = "tools/call",
    action: str = "call",
    request_id: Any = None,
    when: datetime | None = None,
) -> DecisionEvent:
    """A typical decision event; `i` lands in the arguments so rows are distinguishable."""
    return DecisionEvent(
        decision_id=uuid7(),
        request=AccessRequest(
            principal, resource, action, {"city": "Paris", "i": i} if args is None else args,
            time=when or datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC), method=method,
        ),
        decision=decision,
        shadow=shadow,
        server="weather",
        transport="http",
        session_id="sess-1",
        request_id=i if request_id is None else request_id,
        method=method,
        trace_id="0af7651916cd43dd8448eb211c80319c",
        span_id="b7ad6b7169203331",
    )  # fmt: skip


def append_decisions(log: Any, first: int, n: int) -> set[str]:
    """Queue `n` decisions on `log` (an `AuditLog`); return their ids."""
    ids = set()
    for i in range(first, first + n):
        ev = event(i)
        ids.add(ev.decision_id)
        log.append(ev)
    return ids


def append_calls(log: Any, first: int, n: int) -> None:
    """Queue `n` allowed calls on `log` (an `AuditLog`): each a decision and its outcome."""
    for i in range(first, first + n):
        ev = event(i)
        log.append(ev)
        log.append_outcome(ev.decision_id, "ok", 1.0, None)


def subprocess_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(REPO), str(Path(__file__).parent), env.get("PYTHONPATH", "")) if p
    )
    return env


def run_script(
    script: str, *args: str | Path, returncode: int = 0, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """Run the Python `script` with `args` in a process of its own (this checkout's
    `guard`, and this directory on its path); fail unless it exits with `returncode`."""
    proc = subprocess.run(
        [PYTHON, "-c", script, *map(str, args)], env=subprocess_env(),
        capture_output=True, text=True, timeout=timeout, check=False,
    )  # fmt: skip
    assert proc.returncode == returncode, f"exit {proc.returncode}\n{proc.stdout}{proc.stderr}"
    return proc


def scan_for(root: Path, needles: list[bytes]) -> list[str]:
    """Every file under `root` whose bytes contain one of `needles` (Parquet pages are
    compressed, so segments are also decoded through DuckDB by the caller)."""
    hits = []
    for path in root.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            hits += [f"{path}: {n!r}" for n in needles if n in data]
    return hits


PYTHON = sys.executable


def inline_listings(log: Any) -> Any:
    """`log`, writing every listing with its items inline, as when its item set cannot be
    filed (and as stores written before item sets hold them)."""
    log._file_itemset = lambda digest, items: False
    return log


def stored_items(store: Path, row: dict[str, Any]) -> list[dict[str, Any]]:
    """A stored listing row's items: inline, or from the item set it names."""
    import json

    if row.get("items") is not None:
        return list(row["items"])
    line = (store / "itemsets" / f"{row['items_sha256']}.jsonl").read_text()
    return list(json.loads(line)["items"])


def fsync_spy(monkeypatch: Any) -> list[int]:
    """From now on, the inode of every file `os.fsync` syncs (the sync still happens):
    `path.stat().st_ino in synced` says a file (or a directory entry) reached the disk."""
    synced: list[int] = []
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        synced.append(os.fstat(fd).st_ino)
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    return synced


def spill_dir_gone(log: Any) -> Path:
    """The spill directory of `log` (an `AuditLog`) becomes unusable after the log started
    (its disk gone): a file stands where it was, and the log's open spill file is let go
    of, so that every spill from now on fails. Returns the directory's path. (A spill
    directory that is a file already is refused when the log is made.)"""
    import shutil

    spill = log._spill
    with spill.lock:
        if spill._fh is not None:
            spill._fh.close()
            spill._fh = None
        if spill._lock_fd is not None:
            os.close(spill._lock_fd)
            spill._lock_fd = None
        shutil.rmtree(spill.directory)
        spill.directory.write_text("a file where the spill directory should be")
    return Path(spill.directory)


class HangingDisk:
    """A `write_hook`: the store's disk is full (writes refused: rows are spilled) while
    `mode` is "fail", then every write hangs until `release` is set ("hang"), the first
    one setting `entered`; "ok" lets writes through."""

    def __init__(self, hang_for: float = 30) -> None:
        self.mode = "fail"
        self.entered, self.release = threading.Event(), threading.Event()
        self.hang_for = hang_for

    def __call__(self, table: str, rows: int) -> None:
        if self.mode == "fail":
            raise OSError(errno.ENOSPC, "No space left on device")
        if self.mode == "hang":
            self.entered.set()
            self.release.wait(self.hang_for)


def hung_load_back(store: Path, n: int, **settings: Any) -> tuple[Any, HangingDisk, set[str]]:
    """An `AuditLog` on `store` whose writer thread is stuck loading `n` spilled decisions
    back into a store whose write hangs (it holds the spill file meanwhile): the log, its
    disk (set `release` to end the hang) and the decisions' ids."""
    from guard.audit import AuditLog

    disk = HangingDisk(settings.pop("hang_for", 30))
    log = AuditLog(store, write_hook=disk, flush_interval=3600, **settings)
    ids = append_decisions(log, 0, n)
    assert log.flush(10)
    assert log.stats()["spill_pending"] == n
    disk.mode = "hang"
    time.sleep(1.1)  # past the retry interval of a store that failed
    log._wake.set()
    assert disk.entered.wait(10)  # the writer thread loads the spill back, and hangs
    return log, disk, ids


def boom_cannot_be_encoded(monkeypatch: Any) -> None:
    """From now on, the writer cannot encode a decision whose item mentions "boom" (an
    argument, say): `RowBuilder.body` raises for it, as on a record it cannot handle."""
    from guard.audit.rows import RowBuilder

    real_body = RowBuilder.body

    def body(self: RowBuilder, item: tuple[Any, ...], cache: Any = None) -> str:
        if "boom" in repr(item):
            raise ValueError("cannot encode")
        return real_body(self, item, cache)

    monkeypatch.setattr(RowBuilder, "body", body)


def stored_decisions(store: Path) -> list[str]:
    """The decision ids in `store`, sorted, each as often as it is stored."""
    from guard.audit import open_store

    with open_store(store) as con:
        return sorted(i for (i,) in con.execute("SELECT decision_id FROM decisions").fetchall())


def adopted_decisions(store: Path) -> list[str]:
    """`stored_decisions` once a new writer on `store` has adopted what was left spilled
    (it starts and closes), after checking every chain."""
    from guard.audit import AuditLog, verify

    AuditLog(store).close()
    assert verify(store).ok
    return stored_decisions(store)
