"""The spill file: where records wait, on local disk, while the store cannot take them.

One append-only JSON-lines file per writer (`W.jsonl`), owned through an exclusive `flock`
on `W.lock` for the writer's lifetime. A writer that finds another writer's lock free (its
process is gone, or its log closed) adopts that writer's spilled rows, so a crash never
strands them. A closed log that still spills (a request finishing after `close()`) takes
the lock for each such write only, and syncs the rows before letting go.

A line that cannot be loaded back (torn by a crash, garbage, a row of a table or with a
column this version does not know, a row without its `decision_id`) is moved, as it is, to
`<file>.rejected` next to the file it was in, counted, and never deleted.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import threading
import time
from collections.abc import Iterator
from io import FileIO
from pathlib import Path
from typing import Any, Final

from guard.audit.schema import LISTING_ITEM_COLUMNS, TABLES, first_columns, row_body
from guard.audit.segments import fsync_dir, names_file

__all__ = ["SpillFile"]

logger = logging.getLogger("guard.audit")

_ADOPTION_WAIT: Final = 1.0  # seconds a closed writer's late spill waits for an adopter
# A spill file grows for as long as an outage lasts (gigabytes): it is loaded back, and an
# orphan adopted, this many bytes of whole lines at a time (a longer line: that line).
CHUNK_BYTES: Final = 16 * 1024 * 1024
_SCAN: Final = 64 * 1024  # bytes read at a time looking back for a line's start


class SpillFile:
    """Append-only, fsync'd-in-batches JSON lines of `{"t": table, "b": row body}` (the
    row's canonical JSON without its chain columns, see `schema.row_body`)."""

    def __init__(self, directory: Path, writer_id: str) -> None:
        self.directory = directory
        self.path = directory / f"{writer_id}.jsonl"
        self._lock_path = directory / f"{writer_id}.lock"
        self._lock_fd: int | None = None
        self._fh: FileIO | None = None
        self._dirty = False
        self._torn = False  # a failed write not cut back: it may end part-way through a line
        self._entry_synced = True  # the file's directory entry is on disk (durable mode)
        self.pending = 0  # rows in the file not yet loaded back
        self.rejected = 0  # lines moved to a `.rejected` file: not loaded back
        self._released = False  # closed: a write takes the file for itself only
        self.lock = threading.RLock()

    def _open(self) -> FileIO:
        if self._fh is None:
            self.directory.mkdir(parents=True, exist_ok=True)
            if self._lock_fd is None:
                # once let go of, only a writer adopting the file holds it, briefly: wait
                # (bounded: a process forked while it was held keeps the lock it inherited)
                wait = _ADOPTION_WAIT if self._released else 0.0
                self._lock_fd = _lock(self._lock_path, wait=wait)
            # Unbuffered: a write the disk refuses part-way must leave nothing in a buffer,
            # to land later next to the copy of its rows kept elsewhere, or to fail again
            # when the file is closed (and leave it closed for every later write).
            self._fh = open(self.path, "ab", buffering=0)  # noqa: SIM115 - kept open
            self._entry_synced = False
        return self._fh

    def write(self, rows: list[tuple[str, str]], *, fsync: bool) -> None:
        """Append rows, all or none; raises `OSError` when even local disk refuses them (or,
        with `fsync`, will not sync them). A write that fails is cut back off the file: its
        caller keeps its rows elsewhere, or `append` fails and the call it records is
        denied, and a row loaded back would then say that call was allowed.

        After `close()`, each write syncs its rows and lets go of the file again: nothing
        would sync them later, and the next writer on the store (in this process or
        another) must be able to adopt them."""
        with self.lock:
            if not self._released:
                self._write(rows, fsync=fsync)
                return
            try:
                self._write(rows, fsync=True)
            finally:
                self.close()

    def _write(self, rows: list[tuple[str, str]], *, fsync: bool) -> None:
        data = b"".join(_line(t, b) for t, b in rows)
        with self.lock:
            if self._torn:  # end the piece a failed write may have left: a line of its own
                data = b"\n" + data
            fh = self._open()
            if not names_file(self.path, fh.fileno()):
                # the spill directory (the store) was deleted, moved or replaced: rows
                # written there would never be loaded back. Its rows went with it; the
                # file (and its lock) start again at its path.
                logger.warning("spill file %s was deleted, moved or replaced", self.path)
                self._let_go_of_file()
                fh = self._open()
            size = os.fstat(fh.fileno()).st_size
            torn, self._torn = self._torn, True
            try:
                view = memoryview(data)
                while view:  # (a raw write may take part of it)
                    view = view[fh.write(view) :]
                self._dirty = True
                if fsync:
                    self.sync()
            except OSError:
                with contextlib.suppress(OSError):  # else it stays torn (see `_parse_lines`)
                    os.ftruncate(fh.fileno(), size)
                    self._torn = torn
                raise
            self._torn = False
            self.pending += len(rows)

    def _let_go_of_file(self) -> None:
        fh, self._fh = self._fh, None
        if fh is not None:
            with contextlib.suppress(OSError):
                fh.close()
        # (a lock still in place is kept: another writer would adopt the new file)
        if self._lock_fd is not None and not names_file(self._lock_path, self._lock_fd):
            with contextlib.suppress(OSError):
                os.close(self._lock_fd)
            self._lock_fd = None
        self.pending = 0
        self._dirty = self._torn = False

    def sync(self) -> None:
        """fsync what was written since the last sync (group commit for spills)."""
        with self.lock:
            if self._dirty and self._fh is not None:
                os.fsync(self._fh.fileno())
                self._dirty = False
            if not self._entry_synced:  # a new file: its name must survive power loss too
                fsync_dir(self.directory)
                self._entry_synced = True

    def read_tail(self) -> tuple[list[tuple[str, str]], list[bytes], int]:
        """The last whole lines of the file, `CHUNK_BYTES` of them at most (at least its
        last line, however long): their rows, the lines among them that cannot be loaded
        back, and the offset where they start. Loaded back from the end, a spill file
        of any size is read a chunk at a time and cut (`cut`) without being rewritten;
        the caller holds `lock` until it cut them (appends wait meanwhile)."""
        with self.lock:
            try:
                fd = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC)
            except (FileNotFoundError, NotADirectoryError):
                return [], [], 0
            try:
                size = os.fstat(fd).st_size
                start = _tail_start(fd, size)
                data = _pread_all(fd, size - start, start)
            finally:
                os.close(fd)
            rows, bad = _parse_lines(data)
            return rows, bad, start

    def cut(self, start: int, lines: int) -> None:
        """Cut the file back to `start` (`read_tail`'s), synced: its `lines` last lines
        were loaded back (or set aside). Raises `OSError` if it cannot be cut: the file
        keeps them, to be checked against the store before the next load."""
        with self.lock:
            fd = os.open(self.path, os.O_WRONLY | os.O_CLOEXEC)
            try:
                os.ftruncate(fd, start)
                os.fsync(fd)
            finally:
                os.close(fd)
            self._torn = False  # (cut at the start of a line)
            # never 0 while rows are left: `close()` deletes a file without pending rows
            self.pending = 0 if start == 0 else max(self.pending - lines, 1)

    def reject(self, lines: list[bytes], source: Path | None = None) -> None:
        """Append `lines` (read from `source`, default this file) to `<source>.rejected`,
        fsync'd, and count them; raises `OSError` if they cannot be kept. Their content is
        not logged: a line may hold what redaction was meant to keep out of logs.

        Each line is kept once: a file that could not be cut back, or a dead writer's file
        that its adopter died before deleting, is read again later, its lines with it."""
        if not lines:
            return
        source = source or self.path
        target = source.with_name(f"{source.name}.rejected")
        with self.lock:
            kept = _kept_already(target, set(lines))
            fresh = []
            for line in lines:
                if line not in kept:
                    kept.add(line)
                    fresh.append(line)
            lines = fresh
            if not lines:
                return
            with open(target, "ab") as fh:
                fh.write(b"".join(line + b"\n" for line in lines))
                fh.flush()
                os.fsync(fh.fileno())
        fsync_dir(self.directory)
        self.rejected += len(lines)
        logger.warning(
            "%d lines of spill file %s could not be loaded back; moved to %s",
            len(lines), source.name, target,
        )  # fmt: skip

    def adopt_orphans(self) -> int:
        """Move rows spilled by writers gone (or closed) into this file; return how many."""
        adopted = 0
        try:
            locks = sorted(self.directory.glob("*.lock"))
        except OSError:
            return 0
        for lock_path in locks:
            if lock_path == self._lock_path:
                continue
            try:
                fd = os.open(lock_path, os.O_RDWR)
            except FileNotFoundError:
                continue  # another writer adopted it meanwhile
            try:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    continue  # its writer is alive
                orphan = lock_path.with_suffix(".jsonl")
                for rows, bad in _chunks(orphan):
                    self.reject(bad, orphan)
                    if rows:
                        self.write(rows, fsync=True)
                        adopted += len(rows)
                with contextlib.suppress(FileNotFoundError):
                    orphan.unlink()
                with contextlib.suppress(FileNotFoundError):
                    lock_path.unlink()
            finally:
                os.close(fd)
        return adopted

    def forget(self) -> None:
        """In a forked child: close the parent's file and lock without touching them (the
        child's copy of the lock would keep the parent's rows from being adopted)."""
        if self._fh is not None:
            with contextlib.suppress(OSError):
                self._fh.close()
            self._fh = None
        if self._lock_fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._lock_fd)
            self._lock_fd = None

    def close(self) -> None:
        """Sync the file and let go of it (and delete it if it holds no row): the next
        writer to start may adopt its rows. Raises `OSError` if they cannot be synced; the
        file is let go of all the same."""
        with self.lock:
            self._released = True
            try:
                if self._fh is not None:
                    self.sync()
            finally:
                fh, self._fh = self._fh, None
                if fh is not None:
                    with contextlib.suppress(OSError):
                        fh.close()
                empty = self.pending == 0
                if empty:
                    with contextlib.suppress(OSError):
                        self.path.unlink()
                if self._lock_fd is not None:
                    if empty:
                        with contextlib.suppress(OSError):
                            self._lock_path.unlink()
                    os.close(self._lock_fd)
                    self._lock_fd = None


def _lock(path: Path, *, wait: float = 0.0) -> int:
    """An open descriptor of lock file `path`, locked (exclusive); raises `OSError` (also
    `BlockingIOError` when another writer still holds it after `wait` seconds). A writer
    adopting a file deletes it, the lock file last, before it lets go, and so does
    `close()` for an empty one: a lock taken on a lock file deleted meanwhile guards
    nothing, so it is taken again on a new one."""
    deadline = time.monotonic() + wait
    while True:
        fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            held, named = os.fstat(fd), os.stat(path)
            if (held.st_dev, held.st_ino) == (named.st_dev, named.st_ino):
                return fd
        except FileNotFoundError:
            pass
        except BlockingIOError:
            os.close(fd)
            if time.monotonic() >= deadline:
                raise
            time.sleep(0.005)
            continue
        except BaseException:
            os.close(fd)
            raise
        os.close(fd)


def _line(table: str, body: str) -> bytes:
    # ASCII escapes: a body with a lone surrogate (hostile input) still makes a valid line
    return json.dumps({"t": table, "b": body}, separators=(",", ":")).encode() + b"\n"


def _chunks(path: Path) -> Iterator[tuple[list[tuple[str, str]], list[bytes]]]:
    """The rows of a spill file and the lines that are not rows the store can take
    (`_parse_lines`), a chunk of whole lines at a time, from its start."""
    try:
        fh = open(path, "rb")  # noqa: SIM115 - closed below
    except (FileNotFoundError, NotADirectoryError):
        return
    with fh:
        while data := fh.read(CHUNK_BYTES):
            if not data.endswith(b"\n"):
                data += fh.readline()  # the rest of the line (a row's size at most)
            yield _parse_lines(data)


def _tail_start(fd: int, size: int) -> int:
    """Where the file's last whole lines of `CHUNK_BYTES` at most start (where its last
    line does, if that is longer)."""
    if size <= CHUNK_BYTES:
        return 0
    low = size - CHUNK_BYTES  # a line starts at `low` if the byte before it is a newline
    block = _pread_all(fd, CHUNK_BYTES + 1, low - 1)
    found = block.find(b"\n", 0, len(block) - 1)  # (not the file's own last newline)
    if found >= 0:
        return low + found
    while low > 0:  # within its last line: back to where that starts
        begin = max(0, low - _SCAN)
        found = _pread_all(fd, low - begin, begin).rfind(b"\n")
        if found >= 0:
            return begin + found + 1
        low = begin
    return 0


def _pread_all(fd: int, n: int, offset: int) -> bytes:
    """`n` bytes at `offset` (fewer at the end of the file)."""
    parts = []
    while n > 0 and (part := os.pread(fd, n, offset)):
        parts.append(part)
        n -= len(part)
        offset += len(part)
    return b"".join(parts)


def _parse_lines(data: bytes) -> tuple[list[tuple[str, str]], list[bytes]]:
    """The rows of spill file lines, and the lines that are not rows the store can take."""
    rows, bad = [], []
    for line in data.splitlines():
        if not line.strip():
            continue
        row = _row(line)
        if row is None:
            # A write torn part-way (full disk, crash) leaves a piece of a line, and the
            # next write may have gone on right after it. A line starts `{"t":`, which no
            # line holds elsewhere (its body is a JSON string: every quote in it escaped),
            # so a whole line after the piece is found by its start, and only the piece
            # is set aside.
            start = line.rfind(_START)
            row = _row(line[start:]) if start > 0 else None
            # torn by a crash, or not a row this version can store
            bad.append(line if row is None else line[:start])
        if row is not None:
            rows.append(row)
    return rows, bad


def _kept_already(target: Path, lines: set[bytes]) -> set[bytes]:
    """Which of `lines` the `.rejected` file `target` holds already, read a line at a time
    (it may have grown large)."""
    kept: set[bytes] = set()
    try:
        with open(target, "rb") as fh:
            for line in fh:
                line = line.rstrip(b"\n")
                if line in lines:
                    kept.add(line)
    except FileNotFoundError:
        pass
    return kept


_START = b'{"t":'


def _values_body(table: str, values: list[Any]) -> str:
    """The body of a row spilled as its values (`"v"`, the first release's form): one per
    content column, as the table had them then or has them now. A row spilled before a
    column was added (`ADDED_COLUMNS`) reads it as NULL, as its segments do."""
    names = [name for name, _ in TABLES[table]][:-4]
    first = [name for name, _ in first_columns(table)][:-4]
    if len(values) == len(first) < len(names):
        spilled = dict(zip(first, values, strict=True))
        values = [spilled.get(name) for name in names]
    return row_body(table, values)


def _row(line: bytes) -> tuple[str, str] | None:
    """The (table, body) of a spill line; None if it is not a row the store can take."""
    try:
        doc = json.loads(line)
        table = doc["t"]
        body = doc["b"] if "b" in doc else _values_body(table, doc["v"])
        # the body is stored as it is: it must be a row (one of a known table, with
        # the id the duplicate check goes by, and no column this version does not know,
        # a newer version's, which readers and conversions would drop), or it would
        # break the store's chain
        row = json.loads(body + "}")
        if table not in TABLES or not isinstance(row.get("decision_id"), str):
            return None
        if not _CONTENT[table].issuperset(row) or not all(
            _ITEM_FIELDS.issuperset(item) for item in row.get("items") or ()
        ):
            return None
    except (ValueError, KeyError, TypeError, AttributeError):
        return None
    return table, body


_CONTENT: Final = {
    table: frozenset(n for n, _ in columns[:-4]) for table, columns in TABLES.items()
}
_ITEM_FIELDS: Final = frozenset(name for name, _ in LISTING_ITEM_COLUMNS)
