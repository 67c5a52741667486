"""The spill file: where records wait, on local disk, while the store cannot take them.

One append-only JSON-lines file per writer (`W.jsonl`), owned through an exclusive `flock`
on `W.lock` for the writer's lifetime. A writer that finds another writer's lock free (its
process is gone) adopts that writer's spilled rows, so a crash never strands them.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import threading
from pathlib import Path
from typing import BinaryIO

from guard.audit.schema import row_body
from guard.audit.segments import fsync_dir

__all__ = ["SpillFile"]


class SpillFile:
    """Append-only, fsync'd-in-batches JSON lines of `{"t": table, "b": row body}` (the
    row's canonical JSON without its chain columns, see `schema.row_body`)."""

    def __init__(self, directory: Path, writer_id: str) -> None:
        self.directory = directory
        self.path = directory / f"{writer_id}.jsonl"
        self._lock_path = directory / f"{writer_id}.lock"
        self._lock_fd: int | None = None
        self._fh: BinaryIO | None = None
        self._dirty = False
        self._entry_synced = True  # the file's directory entry is on disk (durable mode)
        self.pending = 0  # rows in the file not yet loaded back
        self.lock = threading.RLock()

    def _open(self) -> BinaryIO:
        if self._fh is None:
            self.directory.mkdir(parents=True, exist_ok=True)
            if self._lock_fd is None:
                fd = os.open(self._lock_path, os.O_CREAT | os.O_RDWR, 0o600)
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                self._lock_fd = fd
            self._fh = open(self.path, "ab")  # noqa: SIM115 - kept open for the writer's life
            self._entry_synced = False
        return self._fh

    def write(self, rows: list[tuple[str, str]], *, fsync: bool) -> None:
        """Append rows; raises `OSError` when even local disk refuses them."""
        data = b"".join(_line(t, b) for t, b in rows)
        with self.lock:
            fh = self._open()
            fh.write(data)
            fh.flush()
            self.pending += len(rows)
            self._dirty = True
            if fsync:
                self.sync()

    def sync(self) -> None:
        """fsync what was written since the last sync (group commit for spills)."""
        with self.lock:
            if self._dirty and self._fh is not None:
                os.fsync(self._fh.fileno())
                self._dirty = False
            if not self._entry_synced:  # a new file: its name must survive power loss too
                fsync_dir(self.directory)
                self._entry_synced = True

    def read(self) -> list[tuple[str, str]]:
        """Every complete row in the file (a torn last line from a crash is skipped)."""
        with self.lock:
            return _read_lines(self.path)

    def replace(self, rows: list[tuple[str, str]]) -> None:
        """Atomically make `rows` the whole content (after some were loaded back)."""
        with self.lock:
            if self._fh is not None:
                self._fh.close()
                self._fh = None
            tmp = self.path.with_name(f".{self.path.name}.tmp")
            with open(tmp, "wb") as fh:
                fh.write(b"".join(_line(t, b) for t, b in rows))
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, self.path)
            fsync_dir(self.directory)
            self._entry_synced = True
            self.pending = len(rows)
            self._dirty = False

    def adopt_orphans(self) -> int:
        """Move rows spilled by writers that died into this file; return how many."""
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
                rows = _read_lines(orphan)
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
        with self.lock:
            if self._fh is not None:
                self.sync()
                self._fh.close()
                self._fh = None
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


def _line(table: str, body: str) -> bytes:
    # ASCII escapes: a body with a lone surrogate (hostile input) still makes a valid line
    return json.dumps({"t": table, "b": body}, separators=(",", ":")).encode() + b"\n"


def _read_lines(path: Path) -> list[tuple[str, str]]:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return []
    rows = []
    for line in data.splitlines():
        try:
            doc = json.loads(line)
            table = doc["t"]
            body = doc["b"] if "b" in doc else row_body(table, doc["v"])  # "v": values (0.1)
            rows.append((table, body))
        except (ValueError, KeyError, TypeError):
            continue  # torn write at a crash: the line was never acknowledged
    return rows
