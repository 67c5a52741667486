"""Policy paths that are not regular files. In a policy directory, a FIFO or a device (or
a symlink to one) is an unreadable policy with a clear problem: reading it would block
(a FIFO with no writer: the watcher thread and every reload hang) or never end
(`/dev/zero`). Named explicitly, one is read (`<(generate-policy)`), but never past the
size limit."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest

from guard.errors import PolicyError
from guard.policy import load_policies
from guard.reload import PolicyWatcher

GOOD = "name: p\nrules:\n  - name: r\n    effect: allow\n"


def _load_within(source: Path, seconds: float = 5.0) -> BaseException | None:
    """What loading `source` raised, in a thread that must finish within `seconds`."""
    outcome: list[BaseException | None] = []

    def load() -> None:
        try:
            load_policies(source)
            outcome.append(None)
        except BaseException as exc:  # handed to the test
            outcome.append(exc)

    thread = threading.Thread(target=load, daemon=True)
    thread.start()
    thread.join(seconds)
    assert outcome, f"loading {source} did not finish within {seconds} s"
    return outcome[0]


def test_a_fifo_named_like_a_policy_is_a_problem_not_a_hang(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(GOOD)
    os.mkfifo(tmp_path / "b.yaml")
    exc = _load_within(tmp_path)
    assert isinstance(exc, PolicyError)
    [problem] = exc.problems
    assert problem.code == "unreadable"
    assert "not a regular file" in problem.message
    assert problem.source.endswith("b.yaml")


@pytest.mark.skipif(not os.path.exists("/dev/zero"), reason="needs /dev/zero")
def test_a_symlink_to_an_endless_device_in_a_directory_is_a_problem(tmp_path: Path) -> None:
    (tmp_path / "zero.yaml").symlink_to("/dev/zero")
    exc = _load_within(tmp_path)
    assert isinstance(exc, PolicyError)
    assert "not a regular file" in exc.problems[0].message


@pytest.mark.skipif(not os.path.exists("/dev/zero"), reason="needs /dev/zero")
def test_an_endless_device_named_explicitly_is_read_up_to_the_limit() -> None:
    exc = _load_within(Path("/dev/zero"))
    assert isinstance(exc, PolicyError)
    [problem] = exc.problems
    assert problem.code == "too_large" and "over the limit" in problem.message


def test_a_fifo_named_explicitly_is_read(tmp_path: Path) -> None:
    fifo = tmp_path / "generated.yaml"
    os.mkfifo(fifo)
    writer = threading.Thread(target=fifo.write_text, args=(GOOD,), daemon=True)
    writer.start()
    assert _load_within(fifo) is None
    writer.join(5)


def test_the_watcher_starts_and_sees_changes_beside_a_fifo(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(GOOD)
    os.mkfifo(tmp_path / "b.yaml")
    made: list[PolicyWatcher] = []
    maker = threading.Thread(
        target=lambda: made.append(PolicyWatcher(tmp_path, lambda: None, 0.05, settle=0)),
        daemon=True,
    )
    maker.start()
    maker.join(5)
    assert made, "PolicyWatcher hung reading a FIFO named like a policy"
    seen = threading.Event()
    watcher = PolicyWatcher(tmp_path, seen.set, 0.05, settle=0)
    watcher.start()
    try:
        time.sleep(0.1)
        (tmp_path / "a.yaml").write_text(GOOD.replace("allow", "deny"))
        assert seen.wait(5), "the watcher stopped seeing changes"
    finally:
        watcher.stop()
