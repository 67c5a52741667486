"""Time-ordered unique ids (UUIDv7, RFC 9562) without allocation beyond the string."""

from __future__ import annotations

import os
import random
import threading
import time
from typing import Final

__all__ = ["uuid7"]

_lock = threading.Lock()
# Ids must be unique, not secret: a seeded PRNG costs ~0.1 us where two os.urandom calls
# cost ~1-2 us (a syscall each), and the middleware makes one id per call and per listing.
# Reseeded in forked children so workers never share a sequence.
_rng = random.Random(os.urandom(16))  # noqa: S311 - uniqueness, not secrecy
_last_ms = 0
_seq = 0
_prefix = ""  # the id's first 15 characters (its millisecond and version), per millisecond
# The ids' random last 64 bits (RFC 9562's variant, then 62 random bits), formatted
# `xxxx-xxxxxxxxxxxx`, are made `_BATCH` at a time from one draw of the generator and
# one formatting: making each alone took half of an id's ~1.2 us.
_BATCH: Final = 256
_RANDOM: Final = sum(((1 << 62) - 1) << (64 * k) for k in range(_BATCH))  # 62 bits a lane
_VARIANTS: Final = sum((2 << 62) << (64 * k) for k in range(_BATCH))  # "10" atop each lane
_tails: list[str] = []


def _after_fork_in_child() -> None:
    """A new sequence, and a lock of its own: a thread of the parent making an id at the
    fork held the lock, and no thread is left in the child to let go of it (the child's
    first id, its `AuditLog`'s new writer id in the fork hook, would wait forever)."""
    global _lock
    _lock = threading.Lock()
    _rng.seed(os.urandom(16))
    _tails.clear()  # drawn by the parent, which goes on using the same


os.register_at_fork(after_in_child=_after_fork_in_child)


def _draw_tails() -> None:
    """`_BATCH` new tails (with `_lock` held)."""
    digits = f"{_rng.getrandbits(64 * _BATCH) & _RANDOM | _VARIANTS:0{16 * _BATCH}x}"
    _tails[:] = [f"{digits[i : i + 4]}-{digits[i + 4 : i + 16]}" for i in range(0, 16 * _BATCH, 16)]


def _time_prefix(ms: int) -> str:
    h = f"{ms:012x}"
    return f"{h[:8]}-{h[8:]}-7"


def uuid7() -> str:
    """Return a UUIDv7 string; ids made in one process sort in creation order.

    ```python
    import uuid

    a, b = uuid7(), uuid7()
    assert a < b and uuid.UUID(a).version == 7
    ```
    """
    global _last_ms, _seq, _prefix
    ms = time.time_ns() // 1_000_000
    with _lock:
        if ms > _last_ms:
            _last_ms, _prefix = ms, _time_prefix(ms)
            _seq = _rng.getrandbits(10)  # leave room to count up
        else:
            _seq += 1
            if _seq > 0xFFF:  # 4096 ids in one ms: borrow the next millisecond
                _last_ms += 1
                _prefix = _time_prefix(_last_ms)
                _seq = 0
        seq, prefix = _seq, _prefix
        if not _tails:
            _draw_tails()
        tail = _tails.pop()
    return f"{prefix}{seq:03x}-{tail}"
