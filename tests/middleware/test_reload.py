"""`PolicyWatcher`: reload on a real change only, survive a failing callback."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from guard.reload import PolicyHolder, PolicyWatcher, policy_files


def test_touch_without_change_does_not_reload(tmp_path: Path) -> None:
    file = tmp_path / "p.yaml"
    file.write_text("name: a\nrules: []\n")
    calls: list[int] = []
    watcher = PolicyWatcher(file, lambda: calls.append(1), interval=60)
    st = file.stat()
    os.utime(file, ns=(st.st_atime_ns, st.st_mtime_ns + 5_000_000_000))
    assert watcher.check() is False and calls == []
    file.write_text("name: b\nrules: []\n")
    assert watcher.check() is True and calls == [1]
    assert watcher.check() is False


def test_directory_changes_include_new_and_deleted_files(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text("name: a\nrules: []\n")
    (tmp_path / "notes.txt").write_text("not a policy")
    calls: list[int] = []
    watcher = PolicyWatcher(tmp_path, lambda: calls.append(1), interval=60)
    assert policy_files(tmp_path) == [tmp_path / "a.yaml"]
    (tmp_path / "notes.txt").write_text("still not a policy")
    assert watcher.check() is False
    (tmp_path / "b.yml").write_text("name: b\nrules: []\n")
    assert watcher.check() is True
    (tmp_path / "a.yaml").unlink()
    assert watcher.check() is True and calls == [1, 1]


def test_failing_callback_keeps_the_watcher_alive(tmp_path: Path) -> None:
    file = tmp_path / "p.yaml"
    file.write_text("x: 1\n")

    def boom() -> None:
        raise RuntimeError("callback failed")

    watcher = PolicyWatcher(file, boom, interval=60)
    file.write_text("x: 22\n")
    assert watcher.check() is True  # did not raise


def test_bad_settings_are_rejected(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="positive"):
        PolicyWatcher(tmp_path, lambda: None, interval=0)
    with pytest.raises(ValueError, match="watch="):
        PolicyHolder("name: p\nrules: []\n", watch=1.0)


def test_holder_reports_each_set_put_in_force(tmp_path: Path) -> None:
    seen: list[str] = []
    failed: list[str] = []
    holder = PolicyHolder(
        "name: p\nrules: []\n",
        on_change=lambda s: seen.append(s.hash),
        on_failure=lambda s: failed.append(s.hash),
    )
    first = holder.live
    new = holder.reload("name: q\nrules: []\n")
    assert seen == [first.hash, new.hash] and failed == []
    with pytest.raises(Exception, match="effect"):
        holder.reload("name: q\nrules:\n  - {name: r, effect: maybe}\n")
    assert failed == [new.hash] and holder.live is new
