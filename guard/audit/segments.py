"""The store on disk: a directory of immutable Parquet segments.

```
STORE/                       the store path (e.g. ./mcp-guard-audit.duckdb) is a directory
  decisions/W-000000000001.parquet   rows of writer W from seq 1 on, one file per flush
  outcomes/W-000000000001.parquet
  policies/<policy_hash>.jsonl       policy texts, once per content hash
  writers/W.json                     head of each of W's chains (truncation evidence)
  anchors/<table>-W.json             where retention cut W's chain
  spill/W.jsonl                      rows that could not be written yet (local, fsync'd)
```

Each writer process only ever creates files; nothing is appended to or modified in place,
so readers in other processes never contend for a lock. `compact` replaces many segments by
one: it writes the merged file, then a `<merged>.replaces` marker naming its sources, then
deletes them; readers skip the sources of any marker whose merged file they can see, so they
never count a row twice.
"""

from __future__ import annotations

import contextlib
import json
import os
import stat
import time
from pathlib import Path
from typing import Any, Final

from guard.audit.schema import TABLES, TIMESTAMP_COLUMNS

__all__ = [
    "SEGMENT_SUFFIX",
    "json_select",
    "live_segments",
    "read_json_file",
    "write_json_atomic",
    "write_segment",
]

SEGMENT_SUFFIX: Final = ".parquet"
MARKER_SUFFIX: Final = ".replaces"
MAX_ROW_BYTES: Final = 256 * 1024 * 1024  # redaction caps each value; this caps a row
STALE_STAGING_SECONDS: Final = 600.0  # no segment write takes this long


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def json_select(table: str, source: str) -> str:
    """SQL reading `source`, a file of canonical JSON lines (one row each, chain columns
    included), as the table's typed columns."""
    columns, parts = [], []
    for name, typ in TABLES[table]:
        if name in TIMESTAMP_COLUMNS:
            columns.append(f"'{name}': 'BIGINT'")
            # the same instant as make_timestamp(us)::TIMESTAMPTZ, without a time zone
            # conversion per value (a sixth of the whole write)
            parts.append(f"to_timestamp(0) + to_microseconds({name}) AS {name}")
        else:
            columns.append(f"'{name}': '{typ}'")
            parts.append(name)
    return (
        f"SELECT {', '.join(parts)} FROM read_json('{_sql_path(source)}', "  # noqa: S608
        f"format = 'newline_delimited', columns = {{{', '.join(columns)}}}, "
        f"maximum_object_size = {MAX_ROW_BYTES})"
    )


def staging_directory(base: Path = Path("/dev/shm")) -> Path | None:  # noqa: S108
    """A private directory in memory (`BASE/mcp-guard-UID`, mode 0700) for the lines
    DuckDB parses into a segment, or None (stage next to the segment, on disk). Writing
    100 MB of lines to disk costs more than parsing them; in memory it is cheap.

    Staged files are deleted once their segment is written; files older than
    `STALE_STAGING_SECONDS` were left by a process killed mid-write and are deleted here,
    so crashes cannot fill the memory filesystem.
    """
    if not base.is_dir():
        return None
    path = base / f"mcp-guard-{os.getuid()}"
    try:
        path.mkdir(mode=0o700, exist_ok=True)
        info = path.lstat()
    except OSError:
        return None
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid() or info.st_mode & 0o077:
        return None  # not ours, or readable by others: do not put records there
    cutoff = time.time() - STALE_STAGING_SECONDS
    with contextlib.suppress(OSError):
        for entry in os.scandir(path):
            with contextlib.suppress(OSError):
                if entry.name.endswith(".jsonl") and entry.stat().st_mtime < cutoff:
                    os.unlink(entry.path)
    return path


def write_segment(
    con: Any,
    directory: Path,
    table: str,
    name: str,
    lines: bytes,
    *,
    fsync: bool,
    staging: Path | None = None,
) -> Path:
    """Write one immutable segment atomically (temporary file, then rename).

    `lines` holds one canonical JSON row per line (see `schema.canonical`, plus `hash`).
    DuckDB parses them in C++ straight into typed columns: no Python object per value
    crosses over, which is what made this path fast. With `fsync`, the file and the
    directory entry are on disk when this returns (durable mode). `staging`: where the
    lines wait for DuckDB (see `staging_directory`); falls back to `directory` when full.
    """
    final = directory / name
    tmp = directory / f".{name}.tmp"
    source = _stage(lines, name, staging, directory)
    try:
        con.execute(
            f"COPY ({json_select(table, str(source))}) TO '{_sql_path(str(tmp))}' "
            # zstd level 1: as fast to write as snappy here, half the size of snappy's
            # files; roll-ups and `compact` rewrite them with the default level
            "(FORMAT parquet, COMPRESSION zstd, COMPRESSION_LEVEL 1, ROW_GROUP_SIZE 100000)"
        )
    finally:
        remove_quietly(source)
    if fsync:
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    os.replace(tmp, final)
    if fsync:
        _fsync_dir(directory)
    return final


def _stage(lines: bytes, name: str, staging: Path | None, directory: Path) -> Path:
    """Write `lines` where DuckDB will read them: `staging` if it takes them, else next to
    the segment."""
    if staging is not None:
        with contextlib.suppress(OSError):  # full, or gone: stage on disk instead
            return _write_private(staging / f".{name}.jsonl", lines)
    return _write_private(directory / f".{name}.jsonl", lines)


def _write_private(path: Path, data: bytes) -> Path:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with open(fd, "wb", closefd=True) as fh:
            fh.write(data)
    except OSError:
        remove_quietly(path)
        raise
    return path


def _sql_path(path: str | Path) -> str:
    return str(path).replace("'", "''")


def live_segments(directory: Path, cache: dict[str, Any] | None = None) -> list[Path]:
    """The segments a reader should see now: every `*.parquet`, minus those a compaction or
    roll-up replaced (so no row is ever counted twice).

    A marker `M.replaces` names the sources merged into `M`. Its sources are hidden as soon
    as `M` is visible, or once `M` itself was merged into another file; they stay on disk
    for a grace period (see `collect_garbage`) so queries already reading them finish.
    `cache` (marker path -> sources) saves re-reading markers, which never change.
    """
    try:
        entries = list(os.scandir(directory))
    except FileNotFoundError:
        return []
    files: set[str] = set()
    markers: list[str] = []
    for entry in entries:
        name = entry.name
        if name.startswith("."):
            continue
        if name.endswith(SEGMENT_SUFFIX):
            files.add(name)
        elif name.endswith(MARKER_SUFFIX):
            markers.append(name)
    replaced = marker_sources(directory, markers, cache)
    merged_away = set().union(*replaced.values()) if replaced else set()
    for merged, sources in replaced.items():
        if merged in files or merged in merged_away:
            files.difference_update(sources)
    return [directory / n for n in sorted(files)]


def marker_sources(
    directory: Path, markers: list[str], cache: dict[str, Any] | None = None
) -> dict[str, frozenset[str]]:
    """merged file name -> the source names its marker lists."""
    out: dict[str, frozenset[str]] = {}
    for marker in markers:
        key = str(directory / marker)
        sources = cache.get(key) if cache is not None else None
        if sources is None:
            doc = read_json_file(directory / marker)
            if not isinstance(doc, dict):
                continue  # vanished (collected) or half-written: ignore this round
            sources = frozenset(doc.get("sources", ()))
            if cache is not None:
                cache[key] = sources
        out[marker[: -len(MARKER_SUFFIX)]] = sources
    return out


def read_json_file(path: Path) -> Any:
    """A JSON document, or `None` if the file is missing or half-written."""
    try:
        return json.loads(path.read_bytes())
    except (FileNotFoundError, ValueError):
        return None


def write_json_atomic(path: Path, doc: Any, *, fsync: bool = False) -> None:
    """Replace `path` by `doc` so readers see the old or the new document, never a mix."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    data = json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()
    with open(tmp, "wb") as fh:
        fh.write(data)
        if fsync:
            fh.flush()
            os.fsync(fh.fileno())
    os.replace(tmp, path)


def remove_quietly(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
