"""Item sets (`itemsets/<sha256>.jsonl`) between the writers that name them and the
maintenance (retention, compaction) that deletes them once no row does.

A writer names a set in a row without looking at the disk, from memory, so "no row names
it" is not enough to delete a set: a writer may name it again a moment later. The two
sides agree on a claim, kept in the set file's mtime:

- A writer `claim`s a set before naming it, and again once `CLAIM_SECONDS` have passed
  since its last claim: it refreshes the file's mtime under a shared `flock` on the file.
  A set that is gone (or going) is filed again, or the listing keeps its items inline.
- `sweep` (under the maintenance lock) notes the time, reads every set the remaining rows
  name (segments, hot files, spilled rows), then deletes a set no row names only if its
  mtime is `GRACE_SECONDS` older than that time, checked and deleted under an exclusive
  `flock` on the file, which it never waits for.

A row written after the sweep read the file it is in was claimed at most `CLAIM_SECONDS`
(plus the time a write takes) before, so well within the grace of the time the sweep
noted: its set stays, however old the hot file is. A claim meeting the sweep's lock
names the set not (or, for rows already encoded, waits and then finds it deleted); a
claim after the deletion files the set again. On a filesystem without locks, the sweep
deletes nothing. A sweep that dies midway has deleted only sets nothing names; the next
one deletes the rest.
"""

from __future__ import annotations

import fcntl
import os
import re
import time
from pathlib import Path
from typing import Any, Final

from guard.audit.schema import TABLES
from guard.audit.segments import scan_segments, sql_paths

__all__ = [
    "CLAIM_SECONDS", "GRACE_SECONDS", "claim", "claim_clock", "named_in", "named_sets", "sweep",
]  # fmt: skip

CLAIM_SECONDS: Final = 60.0  # a writer names a set this long after claiming it
# A set no row names is deleted once unclaimed this long: far beyond `CLAIM_SECONDS`
# and any write, and harmless to wait for (a set is small; rows live for months).
GRACE_SECONDS: Final = 24 * 3600.0
_RESCANS: Final = 10  # hot files converted while being read: list them again
_CHUNK: Final = 8 * 1024 * 1024  # bytes of a spill or hot file read at a time
_OVERLAP: Final = 128  # longer than a name as a row holds it (escaped: 81 bytes)
_CLAIM_WAIT_SECONDS: Final = 5.0  # a `claim(wait=True)` waits this long for a sweep

# a set named in a row (`"items_sha256":"…"`), also as spill files hold rows (escaped)
_NAMED: Final = re.compile(rb'items_sha256\\?":\\?"([0-9a-f]{64})')
_DIGEST: Final = re.compile(r"[0-9a-f]{64}")
# the tables whose rows can name a set
_NAMING: Final = tuple(t for t, cols in TABLES.items() if "items_sha256" in dict(cols))


def claim_clock() -> float:
    """Seconds on the clock a writer times its claims by: one that goes on while the
    machine sleeps (a writer suspended for a day must not take its claims for fresh, as
    `time.monotonic` would), and is not set back or forth like the wall clock."""
    return time.clock_gettime(_BOOTTIME)


_BOOTTIME: Final = getattr(time, "CLOCK_BOOTTIME", time.CLOCK_MONOTONIC)


def claim(path: Path, *, wait: bool) -> bool | None:
    """Claim the item set at `path` for `CLAIM_SECONDS`: True once its mtime is now; False
    if it is not on disk (file it again before naming it); None if that cannot be told now
    (a sweep is deciding on it, and `wait` is False or a few seconds went by; or the store
    refuses): name it not."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return False
    except OSError:
        return None
    try:
        deadline = time.monotonic() + (_CLAIM_WAIT_SECONDS if wait else 0.0)
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
                break
            except BlockingIOError:  # a sweep deciding on it (for a moment, unless stopped)
                if time.monotonic() >= deadline:
                    return None
                time.sleep(0.01)
            except OSError:
                break  # no locks on this filesystem: `sweep` deletes nothing there
        if os.fstat(fd).st_nlink == 0:
            return False  # deleted by a sweep between our open and our lock
        os.utime(fd)
        return True
    except OSError:
        return None
    finally:
        os.close(fd)  # (and the lock)


def named_in(data: bytes) -> set[str]:
    """The sets named by the rows in `data` (lines of a hot file or a spill file; a line
    cut short may name one too: kept, to be safe)."""
    return {m.decode() for m in _NAMED.findall(data)}


def named_in_file(path: Path) -> set[str]:
    """`named_in` of the file at `path`, read a chunk at a time: a spill file after a long
    outage can hold gigabytes. Raises `FileNotFoundError` if it is gone."""
    named: set[str] = set()
    with open(path, "rb") as fh:
        tail = b""
        while chunk := fh.read(_CHUNK):
            data = tail + chunk
            named |= named_in(data)
            tail = data[-_OVERLAP:]  # a name cut by the chunk's end is whole in the next
    return named


def named_sets(con: Any, root: Path) -> set[str]:
    """Every set named by a row of the store at `root` that readers see (Parquet segments
    and hot files of the tables that name sets) or that waits in `spill/` to be loaded."""
    import duckdb

    # spilled rows first: a row loaded back is in its hot file before it leaves the spill
    spilled = _spilled(root / "spill")
    for attempt in range(_RESCANS):
        named = set(spilled)
        try:
            for table in _NAMING:
                files, hot = scan_segments(root / table)
                if files:
                    listed = sql_paths(files)
                    rows = con.execute(
                        # (segments written before item sets lack the column: NULL)
                        "SELECT DISTINCT items_sha256 FROM (SELECT CAST(NULL AS VARCHAR) "  # noqa: S608
                        "AS items_sha256 WHERE false UNION ALL BY NAME SELECT * FROM "
                        f"read_parquet([{listed}], union_by_name=true)) "
                        "WHERE items_sha256 IS NOT NULL"
                    ).fetchall()
                    named.update(str(d) for (d,) in rows)
                for path in hot:
                    named |= named_in_file(path)
        except (FileNotFoundError, duckdb.IOException):
            # a hot file converted after it was listed: its segment has its rows now
            if attempt == _RESCANS - 1:
                raise
            time.sleep(0.01 * (attempt + 1))
            continue
        return named
    raise AssertionError("unreachable")


def _spilled(directory: Path) -> set[str]:
    """The sets named by the rows waiting in the spill files in `directory`.

    A row leaves a spill file for its hot file (read after this), or for another spill
    file: a writer that starts adopts a dead writer's rows, writing them to its own file
    before it deletes the dead writer's. Its own file may be newer than the listing, so
    while a file listed is found gone, the directory is listed and read again."""
    named: set[str] = set()
    for attempt in range(_RESCANS):
        gone = False
        for path in sorted(directory.glob("*.jsonl*")):
            if path.name.startswith("."):
                continue  # a rewrite's temporary file: its rows are in the file it replaces
            try:
                named |= named_in_file(path)
            except FileNotFoundError:  # loaded back and removed, or adopted
                gone = True
        if not gone:
            return named
        if attempt == _RESCANS - 1:
            break
        time.sleep(0.01 * (attempt + 1))
    raise FileNotFoundError(f"spill files in {directory} kept moving while being read")


def sweep(con: Any, root: Path, grace: float = GRACE_SECONDS) -> int:
    """Delete the item sets of the store at `root` that no row names and no writer has
    claimed for `grace` seconds; return how many. Run under the maintenance lock."""
    directory = root / "itemsets"
    started = time.time()  # before the rows are read: see the module docstring
    candidates = [p for p in sorted(directory.glob("*.jsonl")) if _DIGEST.fullmatch(p.stem)]
    if not candidates:
        return 0
    named = named_sets(con, root)
    return sum(_delete_unclaimed(p, started - grace) for p in candidates if p.stem not in named)


def _delete_unclaimed(path: Path, cutoff: float) -> bool:
    """Delete the set at `path` if nobody claimed it since `cutoff`, under an exclusive
    lock on it (a writer claiming it meanwhile holds a shared one: the set stays)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return False
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            return False  # being claimed right now, or no locks here to keep claims safe
        held = os.fstat(fd)
        if held.st_mtime >= cutoff:
            return False
        now = os.stat(path)
        if (now.st_ino, now.st_dev) != (held.st_ino, held.st_dev):
            return False  # filed again since (a new file): not the one found unclaimed
        os.unlink(path)
        return True
    except OSError:
        return False
    finally:
        os.close(fd)
