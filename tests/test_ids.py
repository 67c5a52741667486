"""Decision ids: valid UUIDv7s (RFC 9562), unique, and sorted in the order they were made,
even past 4,096 ids in one millisecond and across a fork."""

from __future__ import annotations

import os
import time
import uuid

import pytest

from guard import _ids
from guard._ids import uuid7


def test_ids_are_uuid7_with_the_current_millisecond() -> None:
    before = time.time_ns() // 1_000_000
    value = uuid7()
    after = time.time_ns() // 1_000_000
    parsed = uuid.UUID(value)
    assert str(parsed) == value  # canonical lower-case 8-4-4-4-12 form
    assert parsed.version == 7
    assert parsed.variant == uuid.RFC_4122
    assert before <= parsed.int >> 80 <= after + 1  # +1: a borrowed millisecond


def test_ids_sort_in_creation_order_past_4096_per_millisecond() -> None:
    ids = [uuid7() for _ in range(20_000)]  # far more than 4,096 a millisecond here
    assert ids == sorted(ids)
    assert len(set(ids)) == len(ids)
    assert all(uuid.UUID(i).version == 7 and uuid.UUID(i).variant == uuid.RFC_4122 for i in ids)


def test_a_borrowed_millisecond_keeps_order(monkeypatch: pytest.MonkeyPatch) -> None:
    frozen = time.time_ns()
    monkeypatch.setattr(_ids.time, "time_ns", lambda: frozen)  # the clock stands still
    ids = [uuid7() for _ in range(5_000)]  # the counter overflows at least once
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    stamps = {uuid.UUID(i).int >> 80 for i in ids}
    assert len(stamps) >= 2  # it borrowed the next millisecond rather than repeat ids


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_forked_child_does_not_repeat_its_parents_ids() -> None:
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: report the random tails of a few ids
        os.close(read)
        os.write(write, "\n".join(uuid7()[-12:] for _ in range(50)).encode())
        os._exit(0)
    os.close(write)
    parent = {uuid7()[-12:] for _ in range(50)}
    with os.fdopen(read) as pipe:
        child = set(pipe.read().split("\n"))
    os.waitpid(pid, 0)
    assert len(child) == 50 and not child & parent


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_child_forked_while_another_thread_makes_an_id_can_make_ids() -> None:
    # A thread making an id holds the module's lock for a moment; a child forked then
    # inherits it held, with no thread left to let go. Holding it widens that moment.
    import threading

    held, release = threading.Event(), threading.Event()

    def make_an_id_slowly() -> None:
        with _ids._lock:
            held.set()
            release.wait(10)

    thread = threading.Thread(target=make_an_id_slowly, daemon=True)
    thread.start()
    assert held.wait(10)
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: an `AuditLog`'s fork hook, and every request, make ids
        os.close(read)
        os.write(write, uuid7().encode())
        os._exit(0)
    os.close(write)
    release.set()
    thread.join()
    deadline = time.monotonic() + 10
    while not os.waitpid(pid, os.WNOHANG)[0]:
        if time.monotonic() > deadline:
            os.kill(pid, 9)
            os.waitpid(pid, 0)
            break
        time.sleep(0.02)
    with os.fdopen(read) as pipe:
        made = pipe.read()
    assert uuid.UUID(made).version == 7, "the child hung making its first id"
