"""A reader that lives as long as the servers it watches (a dashboard, a monitoring job)
lists the store before each query. Every roll-up and compaction leaves a marker naming the
segments it replaced, which is collected once its grace is over; the reader remembers what
each marker says (markers never change), and must forget the markers that are gone, or it
grows by one entry per roll-up for as long as it runs."""

from __future__ import annotations

from pathlib import Path

from audit_kit import append_calls

from guard.audit import AuditLog, compact, open_store
from guard.audit.segments import MARKER_SUFFIX


def _remembered(store: object) -> int:
    cache = store._markers  # type: ignore[attr-defined]
    return sum(len(v) if isinstance(v, dict) else 1 for v in cache.values())


def _count(store: object) -> int:
    [(n,)] = store.execute("SELECT count(*) FROM decisions").fetchall()  # type: ignore[attr-defined]
    return int(n)


def test_markers_collected_since_the_last_query_are_forgotten(tmp_path: Path) -> None:
    path = tmp_path / "s"
    AuditLog(path).close()
    reader = open_store(path)
    try:
        for cycle in range(4):
            for flush in range(2):  # two segments a table: something to compact
                log = AuditLog(path, segment_rows=5)
                append_calls(log, (cycle * 2 + flush) * 5, 5)
                log.close()
            compact(path)  # merged; the sources and their marker stay for their grace
            markers = list(path.glob(f"*/*{MARKER_SUFFIX}"))
            assert markers
            assert _count(reader) == (cycle + 1) * 10
            compact(path, grace=0)  # grace over: sources and markers collected
            assert not list(path.glob(f"*/*{MARKER_SUFFIX}"))
            assert _count(reader) == (cycle + 1) * 10
        assert _remembered(reader) == 0
    finally:
        reader.close()
