"""AuditLog end to end in one process: records land complete, outcomes join, policies are
kept once per hash, defaults resolve, and the request path never raises."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from audit_kit import ALICE, ALLOW, REPO, event, inline_listings, stored_items

from guard.audit import DEFAULT, AuditLog, open_store, resolve_audit, verify
from guard.policy.loader import load_policies
from guard.policy.model import Decision, Resource

POLICY = """\
name: main
default_effect: deny
rules:
  - name: users-read
    effect: allow
    agents: {roles: [user]}
    tools: {patterns: ["get_*"]}
"""


def _rows(store: Path, query: str, params: list[Any] | None = None) -> list[tuple[Any, ...]]:
    with open_store(store) as con:
        return list(con.execute(query, params).fetchall())


def test_a_decision_becomes_a_complete_record(tmp_path: Path) -> None:
    log = AuditLog(tmp_path / "s")
    shadow = Decision(False, "default", policy="draft", policy_hash="ph2")
    ev = event(7, args={"city": "Paris", "password": "hunter2"}, shadow=shadow)
    log.append(ev)
    log.append_outcome(ev.decision_id, "error", 1234.5, "ToolError")
    log.close()
    with open_store(tmp_path / "s") as con:
        cur = con.execute("SELECT * FROM decision_log")
        names = [d[0] for d in cur.description]
        (row,) = cur.fetchall()
    rec = dict(zip(names, row, strict=True))
    assert rec["decision_id"] == ev.decision_id
    assert rec["request_time"] == datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)
    assert abs((rec["ts"] - datetime.now(UTC)).total_seconds()) < 60
    assert (rec["trace_id"], rec["span_id"]) == (
        "0af7651916cd43dd8448eb211c80319c",
        "b7ad6b7169203331",
    )
    assert (rec["server"], rec["transport"], rec["session_id"], rec["request_id"]) == (
        "weather", "http", "sess-1", "7",
    )  # fmt: skip
    assert (rec["method"], rec["kind"], rec["action"], rec["resource"]) == (
        "tools/call", "tool", "call", "get_weather",
    )  # fmt: skip
    assert rec["resource_tags"] == ["public", "read"]
    assert (rec["resource_namespace"], rec["resource_version"]) == ("wx", "2")
    assert (rec["user_id"], rec["roles"], rec["auth_method"], rec["key_id"]) == (
        "alice", ["user", "analyst"], "api_key", "k:1a2b3c",
    )  # fmt: skip
    assert rec["authenticated"] is True and json.loads(rec["claims"]) == {"team": "x"}
    assert json.loads(rec["args"]) == {"city": "Paris", "password": "<redacted:path>"}
    assert rec["args_redacted"] == ["password"]
    assert len(rec["args_sha256"]) == 64
    assert (rec["allowed"], rec["reason"], rec["rule"], rec["policy"], rec["policy_hash"]) == (
        True, "rule", "users-read", "main", "ph1",
    )  # fmt: skip
    assert rec["matched_rules"] == ["main/users-read"] and rec["eval_us"] == 4.5
    assert (rec["shadow_allowed"], rec["shadow_policy"], rec["shadow_policy_hash"]) == (
        False, "draft", "ph2",
    )  # fmt: skip
    assert (rec["seq"], len(rec["hash"]), rec["prev_hash"]) == (1, 64, "0" * 64)
    assert (rec["status"], rec["duration_us"], rec["error_class"]) == ("error", 1234.5, "ToolError")
    assert verify(tmp_path / "s").ok


def test_a_listing_leaves_one_record_per_component(tmp_path: Path) -> None:
    log = AuditLog(tmp_path / "s")
    events = []
    for n in range(10):
        tool = Resource("tool", f"tool{n}")
        decision = ALLOW if n < 3 else Decision(False, "default", policy="main")
        ev = event(0, resource=tool, decision=decision, method="tools/list", action="list",
                   request_id="req-42", args={})  # fmt: skip
        ev.decision_id = f"L.{n + 1}"
        events.append(ev)
    log.append_listing("L", events)
    log.close()
    rows = _rows(
        tmp_path / "s",
        "SELECT action, request_id, allowed, resource, decision_id, user_id, args_sha256 "
        "FROM decisions ORDER BY resource",
    )
    assert len(rows) == 10
    assert {(r[0], r[1], r[5]) for r in rows} == {("list", "req-42", "alice")}
    assert [r[2] for r in rows] == [True] * 3 + [False] * 7
    assert [r[3] for r in rows] == [f"tool{n}" for n in range(10)]
    assert sorted(r[4] for r in rows) == sorted(f"L.{n}" for n in range(1, 11))
    assert {r[6] for r in rows} == {hashlib.sha256(b"{}").hexdigest()}
    # stored as one row: one hash covers the whole listing
    assert _rows(tmp_path / "s", "SELECT count(*) FROM listings") == [(1,)]
    assert verify(tmp_path / "s").rows == 1


def test_a_listing_item_reads_back_its_null_fields_as_null(tmp_path: Path) -> None:
    """Items are stored without their NULL fields; every field still reads back."""
    log = AuditLog(tmp_path / "s")
    plain = event(0, resource=Resource("tool", "plain"), method="tools/list", action="list")
    full = event(
        0, resource=Resource("tool", "full", namespace="ns", version="2"), method="tools/list",
        action="list", shadow=Decision(False, "default", policy="draft", policy_hash="d1"),
    )  # fmt: skip
    plain.decision_id, full.decision_id = "L.1", "L.2"
    log.append_listing("L", [plain, full])
    log.close()
    rows = _rows(
        tmp_path / "s",
        "SELECT resource, resource_namespace, resource_version, resource_uri, shadow_allowed, "
        "shadow_policy, shadow_policy_hash, eval_us IS NULL FROM decisions ORDER BY resource",
    )
    assert rows == [
        ("full", "ns", "2", None, False, "draft", "d1", False),
        ("plain", None, None, None, None, None, None, False),
    ]
    assert verify(tmp_path / "s").ok


def _listed(name: str, decision_id: str) -> Any:
    ev = event(0, resource=Resource("tool", name), method="tools/list", action="list")
    ev.decision_id = decision_id
    return ev


def test_listings_of_the_same_items_share_one_item_set(tmp_path: Path) -> None:
    """The same components with the same answers, listed again, are filed once: each
    listing names the set and keeps its own decision times."""
    log = AuditLog(tmp_path / "s", flush_interval=3600)
    for n, micros in enumerate((1.5, 7.25)):
        events = [_listed(name, f"L{n}.{i}") for i, name in enumerate("ab", 1)]
        for ev in events:
            ev.decision = replace(ev.decision, eval_us=micros)
        log.append_listing(f"L{n}", events)
    log.close()
    assert len(list((tmp_path / "s" / "itemsets").glob("*.jsonl"))) == 1
    query = "SELECT decision_id, resource, eval_us FROM decisions ORDER BY decision_id"
    assert _rows(tmp_path / "s", query) == [
        ("L0.1", "a", 1.5), ("L0.2", "b", 1.5), ("L1.1", "a", 7.25), ("L1.2", "b", 7.25)
    ]  # fmt: skip
    assert verify(tmp_path / "s").ok


def test_listing_item_ids_are_derived_from_the_position_or_stored(tmp_path: Path) -> None:
    """An item numbered as the middleware numbers them (listing id, position) is stored
    without its id and reads back with it, from the hot file and from the segment; an id
    numbered otherwise is stored as it is."""
    log = AuditLog(tmp_path / "s", flush_interval=3600)
    log.append_listing("L", [_listed("a", "L.1"), _listed("b", "L.2")])
    log.append_listing("M", [_listed("c", "M.2"), _listed("d", "custom")])
    log.flush()
    query = "SELECT resource, decision_id FROM decisions ORDER BY resource"
    expected = [("a", "L.1"), ("b", "L.2"), ("c", "M.2"), ("d", "custom")]
    assert _rows(tmp_path / "s", query) == expected  # read from the hot file
    (hot,) = (tmp_path / "s" / "listings").glob("*.jsonl")
    stored = [
        stored_items(tmp_path / "s", json.loads(line)) for line in hot.read_text().splitlines()
    ]
    assert [[item.get("decision_id") for item in items] for items in stored] == [
        [None, None],
        ["M.2", "custom"],
    ]
    log.close()
    assert _rows(tmp_path / "s", query) == expected  # read from the segment
    assert verify(tmp_path / "s").ok


def test_listing_items_stored_with_their_ids_read_back_as_stored(tmp_path: Path) -> None:
    """Stores written before item ids were derived keep every item's id: those rows read
    back, and verify, as they were written."""
    from guard.audit.schema import GENESIS, TABLES, canonical, chain_hash

    log = inline_listings(AuditLog(tmp_path / "new", flush_interval=3600))
    log.append_listing("L", [_listed("a", "L.1"), _listed("b", "L.2")])
    log.flush()
    (hot,) = (tmp_path / "new" / "listings").glob("*.jsonl")
    row = json.loads(hot.read_text())
    log.close()
    # the same row as the earlier format wrote it: ids in the items (here other than the
    # position, so that deriving them instead would show), chained from the genesis
    row["items"] = [
        {"decision_id": f"old-{n}", **{k: v for k, v in item.items() if k != "decision_id"}}
        for n, item in enumerate(row["items"])
    ]
    row["seq"], row["prev_hash"] = 1, GENESIS
    values = [row.get(name) for name, _ in TABLES["listings"][:-1]]  # all but the hash
    line = (
        canonical("listings", values)[:-1]
        + f',"hash":"{chain_hash("listings", values)}"}}\n'.encode()
    )
    old = tmp_path / "old" / "listings"
    old.mkdir(parents=True)
    (old / hot.name).write_bytes(line)
    query = "SELECT resource, decision_id FROM decisions ORDER BY resource"
    assert _rows(tmp_path / "old", query) == [("a", "old-0"), ("b", "old-1")]
    assert verify(tmp_path / "old").ok


def test_outcomes_and_decisions_arrive_in_any_order(tmp_path: Path) -> None:
    # flushed only when told: a busy machine cannot split the outcomes over two writes
    log = AuditLog(tmp_path / "s", flush_interval=3600)
    events = [event(i) for i in range(50)]
    for ev in events:
        log.append(ev)
    log.flush()
    for ev in events[:30]:
        log.append_outcome(ev.decision_id, "ok", 10.0, None)
    log.close()
    joined = _rows(tmp_path / "s", "SELECT count(*), count(status) FROM decision_log")
    assert joined == [(50, 30)]
    stats = log.stats()
    assert stats["written_decisions"] == 50 and stats["written_outcomes"] == 30
    assert stats["segments"] == 2 and stats["flush_seconds_count"] == 2  # one per table
    assert stats["spilled"] == stats["failed"] == stats["queue_depth"] == 0


def test_policy_texts_are_kept_once_per_hash_and_rebuild_the_set(tmp_path: Path) -> None:
    policies = load_policies(POLICY)
    log = AuditLog(tmp_path / "s")
    log.record_policies(policies)
    log.record_policies(policies)
    log.close()
    other = AuditLog(tmp_path / "s")  # another process, same set
    other.record_policies(policies)
    other.close()
    with open_store(tmp_path / "s") as store:
        assert store.execute("SELECT count(*) FROM policies").fetchall() == [(1,)]
        texts = store.policy_texts(policies.hash)
    assert load_policies(texts).hash == policies.hash


def test_records_reach_readers_while_the_log_stays_open(tmp_path: Path) -> None:
    log = AuditLog(tmp_path / "s", flush_interval=0.05)
    store = open_store(tmp_path / "s")
    assert store.sql("SELECT count(*) FROM decisions").fetchall() == [(0,)]
    for i in range(5):
        log.append(event(i))
    assert log.flush(10)
    assert store.sql("SELECT count(*) FROM decisions").fetchall() == [(5,)]
    log.append(event(5))
    log.flush(10)
    assert store.execute("SELECT max(seq) FROM decisions").fetchall() == [(6,)]
    store.close()
    log.close()


def test_append_never_raises_and_counts_what_it_could_not_queue(tmp_path: Path) -> None:
    log = AuditLog(tmp_path / "s")
    log.append("not an event")  # type: ignore[arg-type]
    log.append(event(1))
    log.close()
    assert log.stats()["append_errors"] == 1
    assert _rows(tmp_path / "s", "SELECT count(*) FROM decisions") == [(1,)]


def test_claims_allow_list_and_secret_claims(tmp_path: Path) -> None:
    principal = type(ALICE)(
        "bob",
        ("user",),
        claims={"team": "x", "email": "b@x", "note": "Bearer abcdefghijklmnopqrstuvwxyz"},
    )
    log = AuditLog(tmp_path / "s", claims=["team", "note"])
    log.append(event(1, principal=principal))
    log.close()
    (claims, inputs) = _rows(tmp_path / "s", "SELECT claims, inputs_redacted FROM decisions")[0]
    # the claim left out is not recorded, but its place is: replay treats it as unknown
    assert json.loads(claims) == {
        "team": "x",
        "note": "<redacted:secret>",
        "email": "<redacted:path>",
    }
    assert inputs == ["claims.note", "claims.email"]


def test_resolve_audit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert resolve_audit(None) is None
    log = AuditLog(tmp_path / "given")
    assert resolve_audit(log) is log
    log.close()
    default = resolve_audit(DEFAULT)
    assert default is not None and default.path == Path("./mcp-guard-audit.duckdb").absolute()
    default.close()
    monkeypatch.setenv("MCP_GUARD_AUDIT", str(tmp_path / "env"))
    from_env = resolve_audit()
    assert from_env is not None and from_env.path == tmp_path / "env"
    from_env.close()
    # desktop clients pass their configuration's env as written: `~` is the home directory
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("MCP_GUARD_AUDIT", "~/records.duckdb")
    from_home = resolve_audit()
    assert from_home is not None and from_home.path == tmp_path / "home" / "records.duckdb"
    from_home.close()
    from guard.audit.cli import _default_store as cli_default

    assert cli_default() == str(tmp_path / "home" / "records.duckdb")  # the store commands too
    monkeypatch.setenv("MCP_GUARD_AUDIT", "off")
    assert resolve_audit() is None
    by_path = resolve_audit(str(tmp_path / "p"))
    assert by_path is not None and (tmp_path / "p" / "decisions").is_dir()
    by_path.close()
    with pytest.raises(TypeError, match="audit= takes"):
        resolve_audit(42)


def test_a_relative_store_path_survives_a_change_of_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    log = AuditLog("records.duckdb")
    log.append(event(1))
    log.flush()
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")  # servers may chdir after starting
    log.append(event(2))
    log.close()
    assert not (tmp_path / "elsewhere" / "records.duckdb").exists()
    assert _rows(tmp_path / "records.duckdb", "SELECT count(*) FROM decisions") == [(2,)]
    assert verify(tmp_path / "records.duckdb").ok


def test_bad_store_paths_fail_clearly(tmp_path: Path) -> None:
    (tmp_path / "file.duckdb").write_text("not a store")
    from guard.errors import AuditError

    with pytest.raises(AuditError, match="is a file, not an MCP Guard store"):
        open_store(tmp_path / "file.duckdb")
    with pytest.raises(ValueError, match="positive"):
        AuditLog(tmp_path / "s", batch_size=0)


def test_importing_guard_audit_stays_light() -> None:
    code = (
        "import sys, guard, guard.audit; guard.audit.DEFAULT; guard.audit.resolve_audit;"
        "print(sorted(m for m in ('duckdb', 'numpy', 'fastmcp', 'opentelemetry.sdk') "
        "if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True,
                         check=True)  # fmt: skip
    assert out.stdout.strip() == "[]"


async def test_durable_mode_commits_before_returning(tmp_path: Path) -> None:
    import asyncio

    log = AuditLog(tmp_path / "s", durable=True, flush_interval=60)  # no timed flushes
    events = [event(i) for i in range(20)]
    for ev in events:
        log.append(ev)
    done = await asyncio.gather(*(log.wait_durable(ev.decision_id, timeout=30) for ev in events))
    assert all(done)
    # on disk already, without any flush: visible to a reader in any process
    assert _rows(tmp_path / "s", "SELECT count(*) FROM decisions") == [(20,)]
    listing = event(99, method="tools/list", action="list")
    log.append(listing)  # only tool calls wait for the disk
    assert await log.wait_durable(listing.decision_id, timeout=0.01)
    log.close()
    plain = AuditLog(tmp_path / "p")
    assert await plain.wait_durable("any-id")  # default mode: returns at once
    plain.close()


def test_a_backlog_of_listings_is_written_in_slices(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Listings are big rows: a backlog of them is encoded and written a slice at a time,
    in order, so memory stays bounded."""
    from guard.audit import _writing

    monkeypatch.setattr(_writing, "WRITE_MAX_CHARS", 10_000)
    log = inline_listings(AuditLog(tmp_path / "s", flush_interval=3600))  # rows of 30 KB
    for n in range(30):
        events = []
        for i in range(10):
            ev = event(0, resource=Resource("tool", f"tool{i}"), method="tools/list",
                       action="list", args={})  # fmt: skip
            ev.decision_id = f"L{n}.{i + 1}"
            events.append(ev)
        log.append_listing(f"L{n}", events)
    log.flush()
    assert log.stats()["writes"] >= 5
    log.close()
    assert _rows(tmp_path / "s", "SELECT count(*), count(DISTINCT decision_id) FROM decisions") == [
        (300, 300)
    ]
    report = verify(tmp_path / "s")
    assert report.ok and report.rows == 30


def test_the_verify_function_survives_an_import_of_its_module() -> None:
    """`mcp-guard verify` imports `guard.audit.verify`; the import system then set the
    package's `verify` to the module, and `from guard.audit import verify` gave a module
    (found when the README ran after a CLI test)."""
    script = (
        "from guard.audit.verify import verify as function\n"
        "from guard.audit import verify\n"
        "assert verify is function, verify"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_an_item_set_that_cannot_be_written_leaves_no_partial_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A set whose write fails (a full disk) keeps its listing's items inline, and leaves
    nothing behind in `itemsets/`: each failed set would otherwise stay there, half
    written, for good (found in review)."""
    writing = sys.modules["guard.audit._writing"]

    def disk_full(items_json: str) -> tuple[str, bytes]:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(writing, "itemset_line", disk_full)
    log = AuditLog(tmp_path / "s", flush_interval=3600)
    log.append_listing("L0", [_listed("a", "L0.1")])
    log.close()
    assert _rows(tmp_path / "s", "SELECT decision_id, resource FROM decisions") == [("L0.1", "a")]
    assert sorted(p.name for p in (tmp_path / "s" / "itemsets").iterdir()) == []
    assert verify(tmp_path / "s").ok
