"""Policy texts the store refuses are spilled beside the records that name them, and the
next writer on the store files them. Found in review: texts the store refused stayed in
memory only, retried at each flush; at `close()` (or on `kill -9`) they were dropped with
an error line, so the records of that set, stored or spilled, could never be replayed."""

from __future__ import annotations

import errno
from pathlib import Path

import pytest
from audit_kit import event, run_script

from guard import load_policies
from guard.audit import AuditLog, open_store, verify
from guard.policy.model import Decision

POLICIES = load_policies("name: refused\ndefault_effect: allow\nrules: []\n")
ALLOWED = Decision(True, "default", policy_hash=POLICIES.hash)


def refuse_texts(log: AuditLog) -> None:
    def full(digest: str, data: bytes, *, fsync: bool = False) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    log._store_policies = full  # type: ignore[method-assign]


def filed(store: Path) -> set[str]:
    with open_store(store) as con:
        return {h for (h,) in con.execute("SELECT DISTINCT policy_hash FROM policies").fetchall()}


def spilled_texts(spill: Path) -> list[Path]:
    return sorted((spill / "policies").glob("*.jsonl")) if (spill / "policies").exists() else []


@pytest.mark.parametrize("spill_elsewhere", [False, True])
def test_texts_refused_until_close_are_filed_by_the_next_writer(
    tmp_path: Path, spill_elsewhere: bool
) -> None:
    store = tmp_path / "store"
    spill = tmp_path / "local-spill" if spill_elsewhere else store / "spill"
    log = AuditLog(store, spill_dir=spill if spill_elsewhere else None)
    refuse_texts(log)
    log.record_policies(POLICIES)
    log.append(event(1, decision=ALLOWED))
    assert log.flush(10)
    log.close()
    assert POLICIES.hash not in filed(store)
    assert [p.name for p in spilled_texts(spill)] == [f"{POLICIES.hash}.jsonl"]
    AuditLog(store, spill_dir=spill if spill_elsewhere else None).close()
    assert filed(store) == {POLICIES.hash}
    assert spilled_texts(spill) == []
    with open_store(store) as con:
        (text,) = con.execute("SELECT text FROM policies").fetchone()
    assert "name: refused" in text
    report = verify(store)
    assert report.ok and report.unfiled == []


def test_texts_refused_after_close_are_filed_by_the_next_writer(tmp_path: Path) -> None:
    store = tmp_path / "store"
    log = AuditLog(store)
    log.close()
    refuse_texts(log)
    log.record_policies(POLICIES)  # a reload after close
    assert log.append(event(1, decision=ALLOWED)) is True  # spilled
    AuditLog(store).close()
    assert filed(store) == {POLICIES.hash}
    assert verify(store).ok


KILLED_WHILE_TEXTS_ARE_REFUSED = r"""
import errno, os, sys
from audit_kit import event
from guard import load_policies
from guard.audit import AuditLog
from guard.policy.model import Decision

policies = load_policies("name: refused\ndefault_effect: allow\nrules: []\n")
log = AuditLog(sys.argv[1])
def full(digest, data, *, fsync=False):
    raise OSError(errno.ENOSPC, "No space left on device")
log._store_policies = full
log.record_policies(policies)
log.append(event(1, decision=Decision(True, "default", policy_hash=policies.hash)))
log.flush()
os.kill(os.getpid(), 9)
"""


def test_texts_refused_when_the_writer_is_killed_are_filed_by_the_next(tmp_path: Path) -> None:
    store = tmp_path / "store"
    run_script(KILLED_WHILE_TEXTS_ARE_REFUSED, store, returncode=-9)
    AuditLog(store).close()
    assert filed(store) == {POLICIES.hash}
    with open_store(store) as con:
        (n,) = con.execute("SELECT count(*) FROM decisions").fetchone()
    assert n == 1
    assert verify(store).ok


def test_texts_neither_stored_nor_spilled_are_reported_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Found in review: with both disks refusing, the error came again at every flush
    (every 0.5 s by default), for every policy set."""
    log = AuditLog(tmp_path / "store", flush_interval=3600)
    refuse_texts(log)
    log._spill.directory = tmp_path / "file"  # the spill's directory refuses too
    (tmp_path / "file").write_text("x")
    log.record_policies(POLICIES)
    for _ in range(5):
        assert log.flush(10)
    errors = [r for r in caplog.records if "neither stored nor spilled" in r.getMessage()]
    assert len(errors) == 1
    log._spill.directory = tmp_path / "store" / "spill"
    log.close()


def test_texts_whose_storing_raises_unexpectedly_are_retried_not_dropped(tmp_path: Path) -> None:
    # Found in review: only OSError was expected; any other error dropped the texts taken
    # for this flush, and their set was marked seen, so its records could never be replayed.
    store = tmp_path / "store"
    log = AuditLog(store)
    real = log._store_policies
    failures = [RuntimeError("a bug, or memory")]

    def flaky(digest: str, data: bytes, *, fsync: bool = False) -> None:
        if failures:
            raise failures.pop()
        real(digest, data, fsync=fsync)

    log._store_policies = flaky  # type: ignore[method-assign]
    log.record_policies(POLICIES)
    log.append(event(1, decision=ALLOWED))
    log.flush(10)
    assert log.flush(10)  # the next flush tries again
    log.close()
    assert filed(store) == {POLICIES.hash}
    assert verify(store).ok
