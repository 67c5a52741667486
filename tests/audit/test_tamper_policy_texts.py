"""The policy texts a replay re-decides against (`policies/<policy hash>.jsonl`,
`AuditStore.policy_texts`): the README says a recorded decision "can be replayed against
the exact policy that made it". Nothing checks the texts against the content hash they
are filed under, so an edited policy replays (and verifies) as the one in force."""

from __future__ import annotations

import json
from pathlib import Path

from audit_kit import event

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
