"""The store on disk: a directory of immutable Parquet segments and each writer's hot file.

```
STORE/                       the store path (e.g. ./mcp-guard-audit.duckdb) is a directory
  decisions/W-000000000001.jsonl     writer W's hot file: its newest rows, from seq 1 on
  decisions/W-000000000001.parquet   the same rows once converted (25,000 rows or 30 s)
  outcomes/W-000000000001.parquet
  policies/<policy_hash>.jsonl       policy texts, once per content hash
  itemsets/<items_sha256>.jsonl      a listing's items, once per content hash
  writers/W.json                     head of each of W's chains (truncation evidence)
  anchors/<table>-W.json             where retention cut W's chain
  spill/W.jsonl                      rows that could not be written yet (local, fsync'd)
```

A writer appends each flush's rows (canonical JSON lines, one write) to its hot file, which
readers read as JSON (a line still being written is skipped); it converts the hot file to an
immutable Parquet segment of the same name, and deletes it 30 s later (a query that listed
it may open it meanwhile). Readers ignore a hot file whose segment exists, so no row is
counted twice, and never contend for a lock.

`compact` replaces many segments by one: it writes the merged file, then a
`<merged>.replaces` marker naming its sources, then deletes them; readers skip the sources
of any marker whose merged file they can see, so they never count a row twice.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
import time
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from guard.audit.schema import TABLES, TIMESTAMP_COLUMNS
from guard.errors import AuditError

if TYPE_CHECKING:
    import duckdb

__all__ = [
    "HOT_SUFFIX",
    "SEGMENT_SUFFIX",
    "connect",
    "convert_hot",
    "drop_converted_hot",
    "file_origin",
    "file_pattern",
    "fsync_dir",
    "json_select",
    "live_segments",
    "names_file",
    "read_json_file",
    "scan_segments",
    "sql_paths",
    "sql_target",
    "temp_path",
    "write_atomic",
    "write_json_atomic",
]

SEGMENT_SUFFIX: Final = ".parquet"
HOT_SUFFIX: Final = ".jsonl"
MARKER_SUFFIX: Final = ".replaces"
TEMP_SUFFIX: Final = ".tmp"
MAX_ROW_BYTES: Final = 256 * 1024 * 1024  # redaction caps each value; this caps a row
_GLOB_ESCAPES: Final = str.maketrans({"*": "[*]", "?": "[?]", "[": "[[]"})
_LISTINGS: Final = 50  # a directory listed this many times without two agreeing: the last


def connect(**config: Any) -> duckdb.DuckDBPyConnection:
    """A DuckDB connection (`config` as `duckdb.connect` takes it) that never prints.

    DuckDB draws a progress bar on stdout, pipe or not, for any query slower than 2 s; in a
    stdio MCP server stdout is the protocol channel, and the CLI's output is read by
    scripts. Switching the printing off (not the bar) also holds if the bar is asked for
    later on the same connection (`SET progress_bar_time` switches the bar back on)."""
    import duckdb

    con = duckdb.connect(config=config)
    try:
        con.execute("SET enable_progress_bar_print = false").fetchall()
    except BaseException:
        con.close()
        raise
    return con


def file_origin(name: str) -> tuple[str, int] | None:
    """`(writer id, first seq)` of a writer's hot file or segment, named
    `<writer>-<seq:012d>.jsonl` (`.parquet`, `.L1.parquet` after a roll-up); None for
    other files (`compact-….parquet`)."""
    wid, _, rest = name.rpartition("-")
    first, after = rest[:12], rest[12:13]
    if wid and len(first) == 12 and first.isdigit() and after in ("", "."):
        return wid, int(first)
    return None


def temp_path(path: Path) -> Path:
    """Where `path` is written before it is renamed into place: a hidden name, which readers
    skip, of this process and thread, so no two writes share one. A process that dies in
    between leaves it; maintenance deletes it (`maintenance.remove_stale_temps`)."""
    return path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}{TEMP_SUFFIX}")


def names_file(path: Path, fd: int) -> bool:
    """Whether `path` still names the file open as `fd`: not so once it (or the store
    around it) was deleted, moved or replaced, and what is written to `fd` then reaches
    no reader."""
    try:
        named = os.stat(path)
    except OSError:
        return False
    held = os.fstat(fd)
    return (named.st_dev, named.st_ino) == (held.st_dev, held.st_ino)


def fsync_dir(directory: Path) -> None:
    """Make `directory`'s entries (a new or renamed file) durable."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def json_select(table: str, source: str | list[Path], *, hot: bool = False) -> str:
    """SQL reading `source`, file(s) of canonical JSON lines (one row each, chain columns
    included), as the table's typed columns. `hot`: files a writer may be appending to,
    whose last line may be incomplete: lines that do not parse are left out (`verify`
    reads hot files line by line and names any bad one)."""
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
    files = sql_paths([source]) if isinstance(source, str) else f"[{sql_paths(source)}]"
    return (
        f"SELECT {', '.join(parts)} FROM read_json({files}, "  # noqa: S608
        f"format = 'newline_delimited', columns = {{{', '.join(columns)}}}, "
        f"maximum_object_size = {MAX_ROW_BYTES}"
        # DuckDB reads a line it cannot parse as a row of NULLs: a line cut short never has
        # its `hash` (the last field), so this drops exactly the unfinished lines
        + (", ignore_errors = true) WHERE hash IS NOT NULL" if hot else ")")
    )


def sql_paths(paths: Iterable[str | Path]) -> str:
    """`paths` as SQL string literals naming those very files, comma-separated:
    `read_parquet([{sql_paths(files)}])`.

    DuckDB reads a file name as a glob (`*`, `?`, `[`: a store named `records[a]` would
    read `recordsa`'s files, `records*` every look-alike's) and a leading `~` as the home
    directory; so each path is made absolute and its glob characters are bracketed, which
    matches them literally. A glob is also split at backslashes, so a path holding both
    cannot be named at all: refused (`AuditError`) rather than read from elsewhere."""
    return ", ".join(_sql_text(file_pattern(p)) for p in paths)


def sql_target(path: str | Path) -> str:
    """`path`, absolute, as the SQL string literal of a file DuckDB writes (`COPY … TO`,
    which takes its name as it is)."""
    return _sql_text(_absolute(path))


def file_pattern(path: str | Path) -> str:
    """The DuckDB file pattern that matches `path` and nothing else (see `sql_paths`)."""
    text = _absolute(path)
    pattern = text.translate(_GLOB_ESCAPES)
    if len(pattern) != len(text) and "\\" in text:
        raise AuditError(
            f"{text!r} holds a backslash and one of * ? [: DuckDB cannot read it as one "
            "file; use a store path without a backslash"
        )
    return pattern


def _absolute(path: str | Path) -> str:
    text = os.fspath(path)  # as `Path.absolute()`: no symlink resolved, no `..` dropped
    return text if os.path.isabs(text) else os.path.join(os.getcwd(), text)


def _sql_text(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def live_segments(directory: Path, cache: dict[str, Any] | None = None) -> list[Path]:
    """The Parquet segments a reader should see now (see `scan_segments`)."""
    return scan_segments(directory, cache)[0]


def scan_segments(
    directory: Path, cache: dict[str, Any] | None = None
) -> tuple[list[Path], list[Path]]:
    """What a reader should see now: the Parquet segments, minus those a compaction or
    roll-up replaced, and the hot files not yet converted (so no row is counted twice).

    A marker `M.replaces` names the sources merged into `M`. Its sources are hidden as soon
    as `M` is visible, or once `M` itself was merged into another file; they stay on disk
    for a grace period (see `collect_garbage`) so queries already reading them finish.
    A hot file `X.jsonl` is hidden once its segment `X.parquet` exists (or was merged).
    `cache` (marker path -> sources), one per directory, saves re-reading markers, which
    never change; it keeps only the markers listed now.
    """
    try:
        names = _snapshot(directory)
    except FileNotFoundError:
        return [], []
    files: set[str] = set()
    hot: list[str] = []
    markers: list[str] = []
    for name in names:
        if name.startswith("."):
            continue
        if name.endswith(SEGMENT_SUFFIX):
            files.add(name)
        elif name.endswith(HOT_SUFFIX):
            hot.append(name)
        elif name.endswith(MARKER_SUFFIX):
            markers.append(name)
    replaced = marker_sources(directory, markers, cache)
    merged_away = set().union(*replaced.values()) if replaced else set()
    converted = files | merged_away
    hot = [h for h in hot if f"{h[: -len(HOT_SUFFIX)]}{SEGMENT_SUFFIX}" not in converted]
    for merged, sources in replaced.items():
        if merged in files or merged in merged_away:
            files.difference_update(sources)
    return [directory / n for n in sorted(files)], [directory / n for n in sorted(hot)]


def _snapshot(directory: Path) -> list[str]:
    """The names in `directory` at one moment. A listing is read a few hundred entries at
    a time (one `getdents` each), and a file renamed or deleted between two reads may be
    missed in both its forms: a hot file converted meanwhile (its rows in neither), or a
    marker missed while its merged file is seen (rows counted twice). So the directory is
    listed again until two listings agree: a change while one was read shows as a
    difference (a listing of 1,000 files takes ~0.5 ms here)."""
    last = os.listdir(directory)
    for _ in range(_LISTINGS):
        names = os.listdir(directory)
        if names == last:
            break
        last = names
    return last


def convert_hot(
    con: Any, directory: Path, table: str, hot: Path, *, fsync: bool, keep: bool = False
) -> Path:
    """Turn the hot file `X.jsonl` into the segment `X.parquet` (same rows; a last line
    left incomplete by a crash is dropped), then delete it (`keep`: the caller deletes it
    later). Readers see the rows in one or the other throughout."""
    final = hot.with_suffix(SEGMENT_SUFFIX)
    tmp = temp_path(final)
    try:
        con.execute(
            f"COPY ({json_select(table, [hot], hot=True)}) TO {sql_target(tmp)} "
            "(FORMAT parquet, COMPRESSION zstd, COMPRESSION_LEVEL 1, ROW_GROUP_SIZE 100000)"
        )
        if fsync:
            fd = os.open(tmp, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        os.replace(tmp, final)  # readers now skip the hot file
    finally:
        remove_quietly(tmp)
    if fsync:
        fsync_dir(directory)
    if not keep:
        remove_quietly(hot)
    return final


def drop_converted_hot(directory: Path, grace: float) -> None:
    """Delete the hot files in `directory` whose segment was made over `grace` seconds ago
    (readers skip them; a query that listed one before has had its grace), its writer's
    or a closed or dead writer's: `close()` leaves those converted within their grace,
    for the writers still running (and `compact`) to delete."""
    try:
        names = os.listdir(directory)
    except OSError:
        return
    cutoff = time.time() - grace
    for name in names:
        if name.startswith(".") or not name.endswith(HOT_SUFFIX):
            continue
        try:
            if (directory / f"{name[: -len(HOT_SUFFIX)]}{SEGMENT_SUFFIX}").stat().st_mtime > cutoff:
                continue
        except FileNotFoundError:
            continue  # not converted, or merged away: goes before its segment does
        remove_quietly(directory / name)


def marker_sources(
    directory: Path, markers: list[str], cache: dict[str, Any] | None = None
) -> dict[str, frozenset[str]]:
    """merged file name -> the source names its marker lists (`cache`: see `scan_segments`)."""
    out: dict[str, frozenset[str]] = {}
    for marker in markers:
        key = str(directory / marker)
        sources = cache.get(key) if cache is not None else None
        if sources is None:
            doc = read_json_file(directory / marker)
            listed = doc.get("sources", ()) if isinstance(doc, dict) else None
            if not isinstance(listed, list | tuple) or not all(map(_is_name, listed)):
                # vanished (collected), half-written, or no marker of ours: `compact`
                # deletes the sources, so a path elsewhere must never pass for one
                continue
            sources = frozenset(listed)
            if cache is not None:
                cache[key] = sources
        out[marker[: -len(MARKER_SUFFIX)]] = sources
    if cache is not None and len(cache) > len(markers):
        # a marker is collected once its grace is over, never to come back: a reader that
        # runs for weeks would otherwise keep one entry per roll-up it ever saw
        listed_now = {str(directory / marker) for marker in markers}
        for key in [k for k in cache if k not in listed_now]:
            del cache[key]
    return out


def _is_name(source: Any) -> bool:
    """Whether `source` is the name of a file in the marker's own directory."""
    return (
        isinstance(source, str)
        and source not in ("", ".", "..")
        and "/" not in source
        and os.sep not in source
        and "\0" not in source
    )


def read_json_file(path: Path) -> Any:
    """A JSON document, or `None` if the file is missing or half-written."""
    try:
        return json.loads(path.read_bytes())
    except (FileNotFoundError, ValueError):
        return None


def write_json_atomic(path: Path, doc: Any, *, fsync: bool = False) -> None:
    """Replace `path` by `doc` so readers see the old or the new document, never a mix."""
    write_atomic(path, json.dumps(doc, sort_keys=True, separators=(",", ":")).encode(), fsync=fsync)


def write_atomic(path: Path, data: bytes, *, fsync: bool = False) -> None:
    """Replace `path` by `data` so readers see the old or the new file, never a mix; no
    half-written temporary file is left behind when writing fails. `fsync`: the file's
    bytes are on disk before its name is (its directory entry is the caller's to sync)."""
    tmp = temp_path(path)
    try:
        with open(tmp, "wb") as fh:
            fh.write(data)
            if fsync:
                fh.flush()
                os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
        raise


def remove_quietly(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
