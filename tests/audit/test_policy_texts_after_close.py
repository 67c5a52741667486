"""Policy texts recorded by an `AuditLog` after `close()` (a reload after close, a log
shared by two guards and closed by one, a watcher reload that outlived `stop`'s join) went
to a list of pending texts that nobody would write again: the records of that policy set,
spilled and adopted by the next writer, named a set with no texts, and replay could not
rebuild it (`mcp-guard verify` noted it as never filed)."""

from __future__ import annotations

from pathlib import Path

from audit_kit import event
from click.testing import CliRunner

from guard import load_policies
from guard.audit import AuditLog, open_store, verify
from guard.policy.model import Decision

POLICIES = load_policies("name: late\ndefault_effect: allow\nrules: []\n")
ALLOWED = Decision(True, "default", policy_hash=POLICIES.hash)


def _stored_ids(store: Path) -> set[str]:
    with open_store(store) as con:
        return {row[0] for row in con.execute("SELECT decision_id FROM decisions").fetchall()}


def test_policy_texts_recorded_after_close_reach_the_store(tmp_path: Path) -> None:
    store = tmp_path / "store"
    log = AuditLog(store)
    log.close()
    log.record_policies(POLICIES)  # a reload after close (a log two guards shared)
    late = event(1, decision=ALLOWED)
    assert log.append(late) is True
    AuditLog(store).close()
    assert _stored_ids(store) == {late.decision_id}
    report = verify(store)
    assert report.ok and report.unfiled == []
    with open_store(store) as con:
        assert con.execute("SELECT DISTINCT policy_hash FROM policies").fetchall() == [
            (POLICIES.hash,)
        ]
    from guard.cli import main

    result = CliRunner().invoke(main, ["verify", str(store)])
    assert result.exit_code == 0 and "unfiled" not in result.output
    assert "never filed" not in result.output


def test_policy_texts_recorded_while_the_log_closes_reach_the_store(tmp_path: Path) -> None:
    """Recorded after the writer thread's last flush, before `close()` returned."""
    store = tmp_path / "store"
    log = AuditLog(store)
    thread = log._thread
    join = thread.join

    def join_then_record(timeout: float | None = None) -> None:
        join(timeout)
        log.record_policies(POLICIES)

    thread.join = join_then_record  # type: ignore[method-assign]
    log.close()
    assert log._closed
    assert (store / "policies" / f"{POLICIES.hash}.jsonl").exists()
