"""Time-ordered unique ids (UUIDv7, RFC 9562) without allocation beyond the string."""

from __future__ import annotations

import os
import random
import threading
import time

__all__ = ["uuid7"]

_lock = threading.Lock()
# Ids must be unique, not secret: a seeded PRNG costs ~0.1 us where two os.urandom calls
# cost ~1-2 us (a syscall each), and the middleware makes one id per decision (100 per
# listing of 100 tools). Reseeded in forked children so workers never share a sequence.
_rng = random.Random(os.urandom(16))  # noqa: S311 - uniqueness, not secrecy
os.register_at_fork(after_in_child=lambda: _rng.seed(os.urandom(16)))
_last_ms = 0
_seq = 0


def uuid7() -> str:
    """Return a UUIDv7 string; ids made in one process sort in creation order."""
    global _last_ms, _seq
    ms = time.time_ns() // 1_000_000
    with _lock:
        if ms > _last_ms:
            _last_ms = ms
            _seq = _rng.getrandbits(10)  # leave room to count up
        else:
            ms = _last_ms
            _seq += 1
            if _seq > 0xFFF:  # 4096 ids in one ms: borrow the next millisecond
                _last_ms += 1
                ms = _last_ms
                _seq = 0
        seq = _seq
    rand = _rng.getrandbits(62)
    value = (ms << 80) | (0x7 << 76) | (seq << 64) | (0b10 << 62) | rand
    h = f"{value:032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"
