"""The first release spilled rows as `{"t": table, "v": [values]}`, and the spill file still
reads that form, but with the columns of today: a decision spilled before
`inputs_redacted` was added has one value fewer, so every such line was set aside as
unreadable (`.rejected`, counted as lost) instead of being loaded back. A row written
before a column was added reads it as NULL, as segments and hot files of then do."""

from __future__ import annotations

import json
from pathlib import Path

from audit_kit import event

from guard.audit import AuditLog, open_store, verify
from guard.audit.schema import first_columns


def test_a_decision_spilled_by_the_first_release_is_loaded_back(tmp_path: Path) -> None:
    store = tmp_path / "s"
    ev = event(1)
    log = AuditLog(store, write_hook=lambda table, rows: _full(), flush_interval=3600)
    log.append(ev)
    log.close()  # the store refused it: spilled
    [spilled] = (store / "spill").glob("*.jsonl")
    [line] = spilled.read_bytes().splitlines()
    body = json.loads(json.loads(line)["b"] + "}")
    names = [name for name, _ in first_columns("decisions")][:-4]
    assert "inputs_redacted" not in names and "inputs_redacted" not in body
    # as the first release wrote it: one value per column it had
    old = json.dumps({"t": "decisions", "v": [body.get(name) for name in names]})
    (store / "spill" / "W0.jsonl").write_text(old + "\n")
    (store / "spill" / "W0.lock").touch()
    spilled.unlink()
    spilled.with_suffix(".lock").unlink(missing_ok=True)

    log = AuditLog(store)  # adopts the dead writer's spill file and loads it back
    log.close()
    assert not list((store / "spill").glob("*.rejected"))
    assert log.stats()["spill_rejected"] == 0
    with open_store(store) as db:
        got = db.execute("SELECT decision_id, args, inputs_redacted FROM decisions").fetchall()
    assert got == [(ev.decision_id, body["args"], None)]
    assert verify(store).ok


def _full() -> None:
    raise OSError(28, "No space left on device")
