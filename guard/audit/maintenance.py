"""Store maintenance, run on purpose (CLI or API), never behind the operator's back:
`compact` merges many small segments into one; `apply_retention` drops rows older than the
retention period (default 180 days) from the start of each chain. Both then delete the item
sets no row names any more (`itemsets.sweep`).

Both replace segments the same way, safe for readers and writers running meanwhile: write the
new file under a temporary name, write a `<new>.replaces` marker naming the old files, rename
the new file into place (from now on readers skip the old files), then delete the old files.
Both first tidy up after processes that died: they convert their hot files
(`convert_orphans`) and delete their temporary files (`remove_stale_temps`).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final

from guard._ids import uuid7
from guard.audit import itemsets
from guard.audit.schema import LISTING_ITEM_COLUMNS, TABLES
from guard.audit.segments import (
    HOT_SUFFIX,
    MARKER_SUFFIX,
    MAX_ROW_BYTES,
    SEGMENT_SUFFIX,
    TEMP_SUFFIX,
    connect,
    convert_hot,
    file_origin,
    fsync_dir,
    live_segments,
    marker_sources,
    read_json_file,
    remove_quietly,
    scan_segments,
    sql_paths,
    sql_target,
    write_json_atomic,
)
from guard.audit.verify import cut_problem
from guard.errors import AuditError

__all__ = ["DEFAULT_RETENTION_DAYS", "apply_retention", "compact"]

DEFAULT_RETENTION_DAYS = 180
# how long replaced segments stay on disk for queries that listed them before the switch
GRACE_SECONDS = 120.0
# a hot file nobody holds open and untouched this long belongs to a writer that died (a
# live writer holds its hot files open until it has converted them, or has failed to for
# `writer.HANDOVER_SECONDS`); so does a temporary file (a write takes seconds at most)
ORPHAN_SECONDS = 600.0
# A merged file holds at most this much data (Parquet's uncompressed size: DuckDB sorts
# the rows of one merge in memory, ~7 times this at the peak; merging a million-row
# table into one file took 2 GB here). Files this big are left as they are, so a daily
# compaction rewrites the new rows, not the whole store.
MERGED_BYTES = 128 * 1024 * 1024


# Descriptors of the maintenance locks this process holds. A `flock` belongs to the open
# file, which a forked child shares: a child forked while a writer's converter thread rolls
# segments up would hold the store's lock for its whole life (every `compact` waiting, every
# roll-up skipped) unless it closes its copies at once.
_held: set[int] = set()


def _let_go_in_child() -> None:
    for fd in list(_held):
        with contextlib.suppress(OSError):
            os.close(fd)
    _held.clear()


os.register_at_fork(after_in_child=_let_go_in_child)


@contextlib.contextmanager
def maintenance_lock(root: Path, *, wait: bool = True) -> Iterator[bool]:
    """Hold the store's maintenance lock (one compaction / retention / roll-up at a time);
    with `wait=False`, yield False at once if someone else holds it."""
    if not root.is_dir():
        raise AuditError(f"no MCP Guard store at {root}")
    fd = os.open(root / ".maintenance.lock", os.O_CREAT | os.O_RDWR, 0o644)
    _held.add(fd)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX if wait else fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        yield True
    finally:
        if fd in _held:  # else a fork closed it in this (child) process already
            _held.discard(fd)
            os.close(fd)


def replace_segments(
    con: Any, directory: Path, sources: list[Path], query: str, name: str | None = None
) -> Path:
    """Replace `sources` by one new segment holding `query`'s rows, safely for readers:
    the merged file appears after its marker, so readers switch from the sources to it in
    one step; the sources stay on disk for `GRACE_SECONDS` (queries that listed them before
    the switch still read them), then `collect_garbage` deletes them."""
    name = name or f"compact-{uuid7().replace('-', '')}{SEGMENT_SUFFIX}"
    final, tmp = directory / name, directory / f".{name}.tmp"
    con.execute(f"COPY ({query}) TO {sql_target(tmp)} (FORMAT parquet, COMPRESSION zstd)")
    with open(tmp, "rb") as fh:
        os.fsync(fh.fileno())
    write_json_atomic(
        directory / f"{name}{MARKER_SUFFIX}",
        {"sources": [s.name for s in sources], "replaced_at": time.time()},
        fsync=True,
    )
    os.replace(tmp, final)  # readers now see `final` and skip `sources`
    fsync_dir(directory)  # its name is on disk before any source can be deleted
    collect_garbage(directory)
    return final


def collect_garbage(directory: Path, grace: float | None = None) -> int:
    """Delete segments replaced more than `grace` seconds ago (default `GRACE_SECONDS`),
    then their markers; drop markers of merges that never completed. Returns files deleted.
    Run under the maintenance lock."""
    grace = GRACE_SECONDS if grace is None else grace
    now = time.time()
    markers = sorted(p.name for p in directory.glob(f"*{MARKER_SUFFIX}"))
    replaced = marker_sources(directory, markers)
    merged_away = set().union(*replaced.values()) if replaced else set()
    ages = {}
    for merged in replaced:
        doc = read_json_file(directory / f"{merged}{MARKER_SUFFIX}")
        ages[merged] = now - float(doc.get("replaced_at", 0)) if isinstance(doc, dict) else 0.0
    deleted = 0
    # oldest first: a merged file that was merged again goes only after its own sources
    for merged in sorted(replaced, key=lambda m: -ages[m]):
        sources, marker = replaced[merged], directory / f"{merged}{MARKER_SUFFIX}"
        if ages[merged] < grace:
            continue
        if (directory / merged).exists() or merged in merged_away:
            for source in sources:
                # A writer killed between converting its hot file and deleting it left
                # both: the hot file goes first, or it would be read again (its rows
                # twice) once its segment is gone. It is never written to again.
                remove_quietly(directory / f"{source.removesuffix(SEGMENT_SUFFIX)}{HOT_SUFFIX}")
                if (directory / source).exists():
                    remove_quietly(directory / source)
                    deleted += 1
        remove_quietly(marker)  # done, or a merge that never completed
    return deleted


def _held_open(path: Path) -> bool:
    """Whether a writer holds `path` open: it keeps an exclusive `flock` on its hot file
    until it closes it, and the kernel drops the lock when the process dies."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return True  # its writer converted it meanwhile: nothing to do
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    except OSError:
        return False  # no locks on this filesystem: the age alone decides
    finally:
        os.close(fd)
    return False


def convert_orphans(
    con: Any, root: Path, table: str, orphan_age: float, grace: float | None = None
) -> int:
    """Convert the hot files of `table` that no writer holds open and none has touched
    for `orphan_age` seconds (their writer died, e.g. `kill -9`, or left a sealed file it
    could not convert): their rows were readable all along and now join the segments
    `compact` and retention work on. A hot file stays beside its segment (readers skip it)
    for `grace` seconds (default `GRACE_SECONDS`), as replaced segments do: a relation
    made before opens the files it listed only when fetched. Then it goes, here or with
    its segment (`collect_garbage`); so does one whose writer died between converting it
    and deleting it. Returns how many files were converted."""
    converted = 0
    now = time.time()
    grace = GRACE_SECONDS if grace is None else grace
    directory = root / table
    live = set(scan_segments(directory)[1])
    for hot in sorted(directory.glob(f"*{HOT_SUFFIX}")):
        try:
            if hot.stat().st_mtime > now - orphan_age:
                continue
        except FileNotFoundError:
            continue  # its writer converted it meanwhile
        if _held_open(hot):
            continue  # however old, its writer may still append to it
        if hot not in live:  # readers skip it: its segment holds the rows
            try:
                converted_at = hot.with_suffix(SEGMENT_SUFFIX).stat().st_mtime
            except FileNotFoundError:
                continue  # merged away: goes before its segment does (`collect_garbage`)
            if converted_at <= now - grace:
                remove_quietly(hot)
            continue
        unknown = _unknown_fields(con, table, hot)
        if unknown:
            raise AuditError(
                f"{hot} holds {', '.join(unknown)}, which this version of MCP Guard does not "
                "know: it was written by a newer version; converting it would drop them "
                "(its records stay readable: run compact and retention with that version)"
            )
        convert_hot(con, directory, table, hot, fsync=True, keep=grace > 0)
        converted += 1
    return converted


def _unknown_fields(con: Any, table: str, hot: Path) -> list[str]:
    """The fields of `hot`'s rows (and of a listing's items, as `items.<field>`) that are
    not `table`'s columns: a newer version's, which a conversion, typed with this
    version's columns, would drop (and every row's hash would then no longer match)."""
    known = [name for name, _ in TABLES[table]]
    if table == "listings":
        known += [f"items.{name}" for name, _ in LISTING_ITEM_COLUMNS]
    rows = (
        f"read_json_objects({sql_paths([hot])}, format = 'newline_delimited', "
        f"maximum_object_size = {MAX_ROW_BYTES}, ignore_errors = true)"
    )
    found = con.execute(
        f"SELECT DISTINCT field FROM (SELECT unnest(json_keys(json)) AS field FROM {rows} "  # noqa: S608
        f"UNION ALL SELECT 'items.' || unnest(flatten(json_keys(json, '$.items[*]'))) "
        f"FROM {rows}) WHERE NOT list_contains(?, field) ORDER BY field",
        [known],
    ).fetchall()
    return [field for (field,) in found]


def remove_stale_temps(root: Path) -> int:
    """Delete the temporary files (`.<name>….tmp`) that processes which died before
    renaming them left in the store at `root`, once untouched for `ORPHAN_SECONDS`: of item
    sets, policy texts (spilled ones too), heads, markers and anchors
    (`segments.temp_path`), conversions, compactions and roll-ups (and the spill rewrites of
    earlier releases). Returns
    how many. Run under the maintenance lock.

    None a live process may still rename goes: compactions and roll-ups (their markers,
    and anchors) are written under the maintenance lock; a writer holds a hot file locked
    until its conversion of it is done, so that conversion's file stays however old. The
    other writes take well under a second, and only their age protects them (hence not
    `compact`'s `orphan_age`, which may be 0): a process stopped for longer between writing
    one and renaming it finds it gone, and that write fails as one the disk refused (the
    listing keeps its items inline, policy texts and the head are written again, the spill
    file's rows are checked against the store at the next load)."""
    cutoff = time.time() - ORPHAN_SECONDS
    removed = 0
    directories = sorted(p for p in root.iterdir() if p.is_dir())
    spilled_texts = root / "spill" / "policies"  # (a `spill_dir` elsewhere is not seen)
    if spilled_texts.is_dir():
        directories.append(spilled_texts)
    for directory in directories:
        for temp in sorted(directory.glob(f".*{TEMP_SUFFIX}")):
            try:
                if temp.stat().st_mtime > cutoff or _converting(temp):
                    continue
                temp.unlink()
            except FileNotFoundError:
                continue  # renamed or deleted meanwhile
            removed += 1
    return removed


def _converting(temp: Path) -> bool:
    """Whether `temp` is a conversion's temporary file (`.X.parquet.<pid>.<thread>.tmp`,
    see `convert_hot`) whose hot file `X.jsonl` a writer holds locked: it may rename it."""
    segment, found, _ = temp.name[1:].partition(f"{SEGMENT_SUFFIX}.")
    hot = temp.with_name(f"{segment}{HOT_SUFFIX}")
    return bool(found) and hot.exists() and _held_open(hot)


def compact(
    path: str | Path,
    *,
    min_segments: int = 2,
    grace: float | None = None,
    orphan_age: float = ORPHAN_SECONDS,
) -> dict[str, int]:
    """Merge each table's segments into files of up to `MERGED_BYTES` of data (files that
    big already are left as they are); return how many files each table had, and how many
    item sets were deleted (`"itemsets"`).

    Replaced files are deleted once older than `grace` seconds (default `GRACE_SECONDS`:
    queries that started before the merge may still be reading them). Hot files left by
    writers that died (held open by none, untouched for `orphan_age` seconds) are
    converted first; live writers' hot files are theirs. Then, as in `apply_retention`, the
    item sets that no row names go once no writer has claimed them for a day: a set a
    retention cut had to keep (claimed within the day) goes at the next compaction, not at
    the next cut, which may be months away.

    ```python
    compact("mcp-guard-audit.duckdb")
    # {"decisions": 118, "outcomes": 97, "listings": 12, "itemsets": 0}
    ```
    """

    root = Path(path)
    merged: dict[str, int] = {}
    with maintenance_lock(root):
        remove_stale_temps(root)
        con = connect()
        try:
            for table in TABLES:
                convert_orphans(con, root, table, orphan_age, grace)
                files = live_segments(root / table)
                merged[table] = len(files)
                if len(files) < min_segments:
                    collect_garbage(root / table, grace)
                    continue
                for group in _merge_groups(con, files):
                    query = (
                        f"SELECT * FROM read_parquet([{sql_paths(group)}], union_by_name=true) "  # noqa: S608
                        "ORDER BY writer_id, seq"
                    )
                    replace_segments(con, root / table, group, query)
                collect_garbage(root / table, grace)
            merged["itemsets"] = itemsets.sweep(con, root)
        finally:
            con.close()
    return merged


def _merge_groups(con: Any, files: list[Path]) -> list[list[Path]]:
    """`files` in runs (in their order) of at most `MERGED_BYTES` of data each, for one
    merge apiece; a file that big, or a run of one, is not merged."""
    listed = sql_paths(files)
    sizes: dict[str, int] = dict(
        con.execute(
            "SELECT file_name, sum(total_uncompressed_size) "  # noqa: S608
            f"FROM parquet_metadata([{listed}]) GROUP BY file_name"
        ).fetchall()
    )
    groups: list[list[Path]] = []
    run: list[Path] = []
    total = 0
    for path in files:
        size = int(sizes.get(str(path.absolute()), 0))  # DuckDB names files as given
        if size >= MERGED_BYTES or total + size > MERGED_BYTES:
            groups.append(run)
            run, total = [], 0
        if size < MERGED_BYTES:
            run.append(path)
            total += size
    groups.append(run)
    return [group for group in groups if len(group) > 1]


_FILE: Final = "__mcp_guard_segment_file"


def _holding(con: Any, files: list[Path], cond: str) -> list[list[Path]]:
    """The `files` holding rows where `cond` holds, one to a list; all of them in one list
    if DuckDB names a file otherwise than it was given."""
    named = {str(path.absolute()): path for path in files}  # DuckDB names files as given
    # a column name no segment has (a file holding a `filename` column cannot be read with
    # DuckDB's default name for it)
    source = f"read_parquet([{sql_paths(files)}], union_by_name=true, filename='{_FILE}')"
    hits = con.execute(
        f"SELECT DISTINCT {_FILE} FROM {source} WHERE {cond}"  # noqa: S608
    ).fetchall()
    holding = [named.get(name) for (name,) in hits]
    if None in holding:  # pragma: no cover - DuckDB gives back the names it was given
        return [files]
    return [[path] for path in holding if path is not None]


def _hot_starts(directory: Path) -> dict[str, int]:
    """Each writer's first seq still in a hot file of `directory` (`<writer>-<seq>.jsonl`)."""
    starts: dict[str, int] = {}
    for hot in scan_segments(directory)[1]:
        origin = file_origin(hot.name)
        if origin is not None:
            wid, first = origin
            starts[wid] = min(first, starts.get(wid, first))
    return starts


def apply_retention(
    path: str | Path, *, days: float = DEFAULT_RETENTION_DAYS, now: datetime | None = None
) -> dict[str, int]:
    """Delete rows older than `days`; return how many rows each table lost, and how many
    item sets were deleted (`"itemsets"`).

    Rows are removed from the start of each writer's chain only (a row older than the cut
    that follows a newer one stays), and the new start of the chain is recorded in
    `anchors/`, so `verify` still checks everything that remains. Then the item sets that
    no remaining row names go, once no writer has claimed them for a day (see
    `itemsets.py`: a writer may name a set again at any moment).

    ```python
    apply_retention("mcp-guard-audit.duckdb", days=180)
    # {"decisions": 5120, "outcomes": 4800, "listings": 310, "itemsets": 12}
    ```
    """

    if not days > 0:  # also refuses NaN
        raise ValueError(f"retention days must be positive, got {days}")
    root = Path(path)
    try:
        cutoff = (now or datetime.now(UTC)) - timedelta(days=days)
    except OverflowError:  # further back than datetime reaches: nothing is that old
        cutoff = datetime.min.replace(tzinfo=UTC)
    cutoff_us = (cutoff - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1)
    dropped: dict[str, int] = {}
    with maintenance_lock(root):
        remove_stale_temps(root)
        con = connect()
        try:
            for table in TABLES:
                dropped[table] = 0
                convert_orphans(con, root, table, ORPHAN_SECONDS)
                files = live_segments(root / table)
                if not files:
                    continue
                source = f"read_parquet([{sql_paths(files)}], union_by_name=true)"
                # per chain: the first seq that is new enough; everything before it goes
                cuts = con.execute(
                    f"SELECT writer_id, min(seq) FILTER (WHERE epoch_us(ts) >= {cutoff_us}), "  # noqa: S608
                    f"max(seq), count(*) FILTER (WHERE epoch_us(ts) < {cutoff_us}), min(seq) "
                    f"FROM {source} GROUP BY writer_id"
                ).fetchall()
                hot_from = _hot_starts(root / table)
                keep_from: dict[str, int] = {}
                for wid, first_new, last, old, first in cuts:
                    cut = (last + 1) if first_new is None else first_new
                    # never past rows still in a hot file (a conversion its writer handed
                    # over, converted after later ones): the chain would lose its middle
                    cut = min(cut, hot_from.get(wid, cut))
                    if old and cut > first:
                        keep_from[wid] = cut
                if not keep_from:
                    continue
                for wid, first in keep_from.items():
                    # the rows are picked by `ts`, which a back-dated row would lie about
                    problem = cut_problem(con, root, table, files, wid, first)
                    if problem is not None:
                        raise AuditError(
                            f"retention refused: {table} writer {wid} {problem}; `mcp-guard "
                            "verify` names it, and deleting these rows would hide it"
                        )
                (root / "anchors").mkdir(exist_ok=True)
                for wid, first in keep_from.items():
                    prev = con.execute(
                        f"SELECT hash FROM {source} WHERE writer_id = ? AND seq = ?",  # noqa: S608
                        [wid, first - 1],
                    ).fetchone()
                    if prev is None:
                        continue
                    write_json_atomic(
                        root / "anchors" / f"{table}-{wid}.json",
                        {"first_seq": first, "prev_hash": prev[0], "cut_at": cutoff.isoformat()},
                        fsync=True,
                    )
                cond = " OR ".join(
                    f"(writer_id = '{w.replace(chr(39), '')}' AND seq < {int(s)})"
                    for w, s in keep_from.items()
                )
                counted = con.execute(
                    f"SELECT count(*) FROM {source} WHERE {cond}"  # noqa: S608
                ).fetchone()
                dropped[table] = int(counted[0]) if counted else 0
                # Only the files holding rows that go are rewritten, each on its own: the
                # rest of the store (most of it, at a daily cut) is not read again, nor
                # sorted in memory as one table.
                for group in _holding(con, files, cond):
                    one = f"read_parquet([{sql_paths(group)}], union_by_name=true)"
                    query = f"SELECT * FROM {one} WHERE NOT ({cond}) ORDER BY writer_id, seq"  # noqa: S608
                    replace_segments(con, root / table, group, query)
            # after the rows are gone (readers see the new segments): the sets they named
            dropped["itemsets"] = itemsets.sweep(con, root)
        finally:
            con.close()
    return dropped
