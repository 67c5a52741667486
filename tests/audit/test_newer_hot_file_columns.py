"""A hot file left by a newer MCP Guard, whose rows hold a column (or a listing item field)
this version does not know: `compact` and retention converted it with this version's
columns, so the Parquet segment lost the column and the hot file was deleted. The newer
version's records were silently cut down, for good, and `verify` then called every one of
them edited. Now maintenance refuses such a file, naming it and the column, and keeps it."""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from audit_kit import event, inline_listings
from click.testing import CliRunner

from guard.audit import AuditLog, open_store, verify
from guard.audit.maintenance import apply_retention, compact
from guard.cli import main
from guard.errors import AuditError


def _as_newer(store: Path, table: str, field: bytes, before: bytes) -> Path:
    """Rewrite `table`'s only hot file as a newer version would have written it: `field`
    inserted before `before` in each row, rechained; its writer is gone (an old file)."""
    [hot] = (store / table).glob("*.jsonl")
    prev, out = "0" * 64, []
    for line in hot.read_bytes().splitlines():
        body = line[: line.index(b',"prev_hash"')].replace(before, field + before, 1)
        body += b',"prev_hash":' + json.dumps(prev).encode()
        prev = hashlib.sha256(body + b"}").hexdigest()
        out.append(body + b',"hash":' + json.dumps(prev).encode() + b"}")
    hot.write_bytes(b"\n".join(out) + b"\n")
    old = time.time() - 3600
    os.utime(hot, (old, old))
    return hot


def _left_hot(store: Path, append: Callable[[AuditLog], object]) -> None:
    """Records appended by `append`, left in hot files, as by a writer that died."""
    log = inline_listings(AuditLog(store, segment_age=3600))
    append(log)
    log.flush()
    tables = ("decisions", "listings")
    hot = {p: p.read_bytes() for t in tables for p in (store / t).glob("*.jsonl")}
    log.close()
    for path, data in hot.items():
        path.with_suffix(".parquet").unlink()
        path.write_bytes(data)


@pytest.mark.parametrize("maintain", [compact, apply_retention])
def test_maintenance_refuses_a_hot_file_with_a_column_it_does_not_know(
    tmp_path: Path, maintain: Callable[..., object]
) -> None:
    store = tmp_path / "s"
    _left_hot(store, lambda log: [log.append(event(i)) for i in range(2)])
    hot = _as_newer(store, "decisions", b',"risk_score":7', b',"writer_id"')
    data = hot.read_bytes()
    with pytest.raises(AuditError, match=r"risk_score.*newer") as raised:
        if maintain is compact:
            compact(store, orphan_age=0, grace=0)
        else:
            apply_retention(store, days=1)
    assert hot.name in str(raised.value)
    assert hot.read_bytes() == data  # kept, every column
    assert not list((store / "decisions").glob("*.parquet"))
    with open_store(store) as db:  # still read, as before
        assert db.execute("SELECT count(*) FROM decisions").fetchone() == (2,)


def test_compact_refuses_a_hot_listing_whose_items_hold_a_field_it_does_not_know(
    tmp_path: Path,
) -> None:
    store = tmp_path / "s"
    _left_hot(store, lambda log: log.append_listing("L", [event(1)]))
    hot = _as_newer(store, "listings", b',"risk_score":7', b',"kind"')
    with pytest.raises(AuditError, match=r"items\.risk_score"):
        compact(store, orphan_age=0, grace=0)
    assert hot.exists()


def test_compact_still_converts_a_dead_writers_hot_files(tmp_path: Path) -> None:
    store = tmp_path / "s"
    _left_hot(store, lambda log: (log.append(event(1)), log.append_listing("L", [event(2)])))
    compact(store, orphan_age=0, grace=0)
    assert not list((store / "decisions").glob("*.jsonl"))
    assert not list((store / "listings").glob("*.jsonl"))
    with open_store(store) as db:
        assert db.execute("SELECT count(*) FROM decisions").fetchone() == (2,)


@pytest.mark.parametrize("command", [["compact"], ["retention", "--days", "1"]])
def test_the_commands_say_so_without_a_traceback(tmp_path: Path, command: list[str]) -> None:
    store = tmp_path / "s"
    _left_hot(store, lambda log: log.append(event(1)))
    hot = _as_newer(store, "decisions", b',"risk_score":7', b',"writer_id"')
    result = CliRunner().invoke(main, [*command, str(store)])
    assert result.exit_code == 1, result.output
    assert isinstance(result.exception, SystemExit), repr(result.exception)
    assert "risk_score" in result.output and hot.name in result.output
    assert hot.exists()


def test_a_spilled_row_with_a_column_it_does_not_know_is_set_aside_not_stored(
    tmp_path: Path,
) -> None:
    """A newer version's spilled row, adopted by this version's writer, was stored as it
    was: readers dropped the column, the writer's conversion dropped it for good, and
    `verify` called the row edited. It is kept as it is, beside the spill file, as a row
    of a table this version does not know is."""
    store = tmp_path / "s"
    ev, known = event(1), event(2)
    log = AuditLog(store, write_hook=_full, flush_interval=3600)
    log.append(ev)
    log.append(known)
    log.close()  # the store refused them: spilled
    [spilled] = (store / "spill").glob("*.jsonl")
    first, second = spilled.read_bytes().splitlines()
    doc = json.loads(first)
    doc["b"] += ',"risk_score":7'  # a column a newer version appends
    newer = json.dumps(doc, separators=(",", ":")).encode()
    spilled.write_bytes(newer + b"\n" + second + b"\n")

    log = AuditLog(store)
    log.close()
    with open_store(store) as db:
        got = db.execute("SELECT decision_id FROM decisions").fetchall()
    assert got == [(known.decision_id,)]
    [rejected] = (store / "spill").glob("*.rejected")
    assert rejected.read_bytes() == newer + b"\n"
    assert verify(store).ok


def _full(table: str, rows: object) -> None:
    raise OSError(28, "No space left on device")
