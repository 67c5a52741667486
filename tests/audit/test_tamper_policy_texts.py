"""The policy texts a replay re-decides against (`policies/<policy hash>.jsonl`,
`AuditStore.policy_texts`): the README says a recorded decision "can be replayed against
the exact policy that made it". Nothing checks the texts against the content hash they
are filed under, so an edited policy replays (and verifies) as the one in force."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from audit_kit import event, fsync_spy

from guard import load_policies
from guard.audit import AuditLog, open_store, verify

POLICY = """name: weather
version: "1.0"
default_effect: deny
rules:
  - name: users-read-weather
    effect: allow
    agents: {roles: [user]}
    tools: {names: [get_weather]}
    actions: [list, call]
"""


def test_edited_policy_text_is_detected(tmp_path: Path) -> None:
    policies = load_policies(POLICY)
    store = tmp_path / "store"
    log = AuditLog(store)
    log.record_policies(policies)
    log.append(event(0))
    log.close()
    (stored,) = (store / "policies").glob("*.jsonl")
    doc = json.loads(stored.read_text())
    doc["text"] = doc["text"].replace("effect: allow", "effect: deny")
    stored.write_text(json.dumps(doc) + "\n")  # text_sha256 left stale, or recomputed: same

    report = verify(store)
    try:
        with open_store(store) as con:
            texts = con.policy_texts(policies.hash)
    except Exception:  # refusing the edited texts is fine too
        texts = None
    replayed = None if texts is None else load_policies(texts).hash
    assert not report.ok or texts is None or replayed == policies.hash, (
        f"verify ok, policy_texts({policies.hash[:12]}) gives a set hashing to {replayed[:12]}"
    )


def test_a_policy_line_readers_cannot_read_is_detected(tmp_path: Path) -> None:
    """A second `text` key put first in the line (`{"text":"<edited>", <original>}`):
    Python's `json` keeps the last value (the original, which hashes right), so `verify`
    said ok; DuckDB, which readers and `policy_texts` read the texts with, refuses the
    line, and with it the whole `policies` view (found in review)."""
    policies = load_policies(POLICY)
    store = tmp_path / "store"
    log = AuditLog(store)
    log.record_policies(policies)
    log.append(event(0))
    log.close()
    (stored,) = (store / "policies").glob("*.jsonl")
    edited = json.dumps(POLICY.replace("effect: allow", "effect: deny")).encode()
    stored.write_bytes(b'{"text":' + edited + b"," + stored.read_bytes()[1:])

    report = verify(store)
    try:
        with open_store(store) as con:
            replayed = load_policies(con.policy_texts(policies.hash)).hash
    except Exception as exc:
        replayed = repr(exc)
    assert not report.ok or replayed == policies.hash, f"verify ok, replay: {replayed}"
    assert report.first is not None and report.first.file == str(stored)


async def test_a_deleted_policy_text_is_detected(tmp_path: Path) -> None:
    """The texts replay re-decides against can be deleted without touching a chain:
    `verify` said ok. Every policy set a decision (or a listing's component, or a shadow
    decision) names must have its texts in the store."""
    from fastmcp import Client, FastMCP

    from guard import GuardMiddleware, Principal

    store = tmp_path / "store"
    app = FastMCP("weather")

    @app.tool
    def get_weather() -> str:
        return "sun"

    draft = POLICY.replace("name: weather", "name: draft").replace("allow", "deny")
    guard = GuardMiddleware(POLICY, shadow=draft, principal=Principal("u", roles=("user",)),
                            audit=store)  # fmt: skip
    app.add_middleware(guard)
    async with Client(app) as client:
        await client.list_tools()
        await client.call_tool("get_weather", {})
    guard.close()
    assert verify(store).ok
    live, shadow = load_policies(POLICY).hash, load_policies(draft).hash
    for gone in (shadow, live):
        (store / "policies" / f"{gone}.jsonl").unlink()
        report = verify(store)
        assert not report.ok
        assert any(gone[:12] in p.message and p.table == "policies" for p in report.problems)


def test_texts_never_filed_are_noted_not_taken_for_tampering(tmp_path: Path) -> None:
    """Records appended by hand, without `record_policies`, name sets whose texts no writer
    filed: not replayable, which `verify` notes, but nothing was deleted."""
    from click.testing import CliRunner

    from guard.cli import main

    policies = load_policies(POLICY)
    store = tmp_path / "store"
    log = AuditLog(store)
    log.append(event(0, decision=policies.decide(event(0).request)))
    log.close()
    report = verify(store)
    assert report.ok and report.unfiled == [policies.hash]
    shown = CliRunner().invoke(main, ["verify", str(store)])
    assert shown.exit_code == 0 and f"never filed ({policies.hash[:12]})" in shown.output


def test_durable_mode_syncs_policy_texts_before_the_records_naming_them(
    tmp_path: Path, monkeypatch: Any
) -> None:
    """A durable record survives a power loss; the texts it names, written without a sync,
    might not: replay could not re-decide it."""
    synced = fsync_spy(monkeypatch)
    policies = load_policies(POLICY)
    store = tmp_path / "store"
    log = AuditLog(store, durable=True)
    log.record_policies(policies)
    log.append(event(0))
    log.flush()
    text = store / "policies" / f"{policies.hash}.jsonl"
    assert text.stat().st_ino in synced
    assert (store / "policies").stat().st_ino in synced  # its name too
    log.close()
