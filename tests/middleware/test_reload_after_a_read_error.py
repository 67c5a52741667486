"""A watched policy change that could not be read (an I/O error: NFS, a failing disk) is
read again: the files' times and sizes say nothing new once the read works again, so a
watcher that took the change as acted on kept the old set in force until the next edit.
A deleted policy file is not retried (its return is a change of its own).

The error is injected into the read (`os.read` on the policy file only): as root, which
the tests run as, no permission makes a file unreadable, and nothing here makes a real
disk fail for a moment."""

from __future__ import annotations

import errno
import logging
import os
import time
from pathlib import Path
from typing import Any

import pytest

from guard import GuardMiddleware, Principal
from guard.reload import RETRY_SECONDS

OLD = "name: p\nrules:\n  - {name: a, effect: allow, tools: {names: [old]}}\n"
NEW = "name: p\nrules:\n  - {name: a, effect: allow, tools: {names: [new]}}\n"


def _names(mw: GuardMiddleware) -> list[str]:
    return [r.tools.names[0] for p in mw.policy_set.policies for r in p.rules if r.tools]


def _wait_for(check: Any, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.02)
    return bool(check())


def test_a_change_read_while_the_disk_failed_is_read_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "p.yaml"
    path.write_text(OLD)
    monkeypatch.setattr("guard.reload.RETRY_SECONDS", 0.2)
    failing = {"on": False}
    real_read, real_open = os.read, os.open
    policy_fds: set[int] = set()

    def opened(file: Any, flags: int, *args: Any, **kwargs: Any) -> int:
        fd = real_open(file, flags, *args, **kwargs)
        if os.fspath(file) == str(path):
            policy_fds.add(fd)
        return fd

    def read(fd: int, n: int) -> bytes:
        if failing["on"] and fd in policy_fds:
            raise OSError(errno.EIO, os.strerror(errno.EIO))
        return real_read(fd, n)

    monkeypatch.setattr(os, "open", opened)
    monkeypatch.setattr(os, "read", read)
    alice = Principal("alice", auth_method="stdio")
    mw = GuardMiddleware(path, principal=alice, audit=None, telemetry=False, watch=0.02)
    try:
        assert _names(mw) == ["old"]
        failing["on"] = True
        with caplog.at_level(logging.WARNING, logger="guard"):
            path.write_text(NEW)
            # settled and read (and failed) once at least
            assert _wait_for(lambda: "Input/output error" in caplog.text, 5)
        assert _names(mw) == ["old"]  # the old set stays in force meanwhile
        failing["on"] = False
        assert _wait_for(lambda: _names(mw) == ["new"], 5), _names(mw)
    finally:
        mw.close()


def test_a_deleted_policy_file_is_not_read_again_and_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "p.yaml"
    path.write_text(OLD)
    monkeypatch.setattr("guard.reload.RETRY_SECONDS", 0.05)
    mw = GuardMiddleware(path, principal=Principal("alice"), audit=None, telemetry=False,
                         watch=0.02)  # fmt: skip
    try:
        with caplog.at_level(logging.WARNING, logger="guard"):
            path.unlink()
            assert _wait_for(lambda: "no such policy file" in caplog.text, 5)
            time.sleep(0.5)  # ten retry intervals
        assert caplog.text.count("no such policy file") == 1
        assert _names(mw) == ["old"]
    finally:
        mw.close()


def test_the_retry_interval_is_a_few_seconds() -> None:
    assert 1 <= RETRY_SECONDS <= 30


def test_a_draft_read_while_the_disk_failed_is_read_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    live, draft = tmp_path / "live.yaml", tmp_path / "draft.yaml"
    live.write_text(OLD)
    draft.write_text(OLD)
    monkeypatch.setattr("guard.reload.RETRY_SECONDS", 0.2)
    failing = {"on": False}
    real_read, real_open = os.read, os.open
    draft_fds: set[int] = set()

    def opened(file: Any, flags: int, *args: Any, **kwargs: Any) -> int:
        fd = real_open(file, flags, *args, **kwargs)
        if os.fspath(file) == str(draft):
            draft_fds.add(fd)
        return fd

    def read(fd: int, n: int) -> bytes:
        if failing["on"] and fd in draft_fds:
            raise OSError(errno.EIO, os.strerror(errno.EIO))
        return real_read(fd, n)

    monkeypatch.setattr(os, "open", opened)
    monkeypatch.setattr(os, "read", read)
    mw = GuardMiddleware(live, principal=Principal("alice"), audit=None, telemetry=False,
                         shadow=draft, watch=0.02)  # fmt: skip

    def drafted() -> list[str]:
        shadow = mw.shadow_set
        assert shadow is not None
        return [r.tools.names[0] for p in shadow.policies for r in p.rules if r.tools]

    try:
        failing["on"] = True
        with caplog.at_level(logging.WARNING, logger="guard"):
            draft.write_text(NEW)
            assert _wait_for(lambda: "Input/output error" in caplog.text, 5)
        assert drafted() == ["old"]
        failing["on"] = False
        assert _wait_for(lambda: drafted() == ["new"], 5), drafted()
    finally:
        mw.close()
