"""Reload edge cases: `close()` during a reload that moves the watch, and a change loaded at
the first poll once the files' own times say it settled (found in review)."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import guard.reload as reload_mod
from guard.reload import PolicyHolder, PolicyWatcher


def _policy(name: str) -> str:
    return f"name: {name}\nrules:\n  - name: r\n    effect: allow\n    tools: {{names: [q]}}\n"


def _watch_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("guard-policy-watch")]


def test_close_during_reload_to_a_new_path_leaves_no_watcher_running(
    tmp_path: Path, monkeypatch: object
) -> None:
    # `close()` (server shutdown) does not take the holder's lock; a concurrent
    # `reload(new_path)` then installs and starts a watcher for the new path after
    # close has stopped the old one: a thread polling (and reloading) forever.
    old, new = tmp_path / "old.yaml", tmp_path / "new.yaml"
    old.write_text(_policy("old"))
    new.write_text(_policy("new"))
    holder = PolicyHolder(old, watch=0.05)
    loading, go_on = threading.Event(), threading.Event()
    real = reload_mod.load_policy_set

    def slow_load(source: object) -> object:
        loading.set()
        go_on.wait(5)
        return real(source)

    monkeypatch.setattr(reload_mod, "load_policy_set", slow_load)  # type: ignore[attr-defined]
    t = threading.Thread(target=holder.reload, args=(new,))
    t.start()
    assert loading.wait(5)
    holder.close()  # the server stops while the reload is loading
    go_on.set()
    t.join(5)
    time.sleep(0.2)
    try:
        assert holder._watcher is None and not _watch_threads(), (
            f"watcher still running after close(): {_watch_threads()}"
        )
    finally:
        if holder._watcher is not None:
            holder._watcher.stop()


def test_a_change_stable_longer_than_settle_is_loaded_at_the_poll_that_sees_it(
    tmp_path: Path,
) -> None:
    # README: a change is loaded "once the files have stayed the same for a second".
    # The watcher counts that second from the poll that first sees the change, so with
    # an interval above `settle` every change waits one extra whole interval (watch=30:
    # a file unchanged for 29 s is still not loaded, the next poll 30 s later loads it).
    path = tmp_path / "p.yaml"
    path.write_text(_policy("a"))
    calls: list[int] = []
    watcher = PolicyWatcher(path, lambda: calls.append(1), interval=30, settle=1.0)
    path.write_text(_policy("b"))
    time.sleep(1.3)  # the file has now stayed the same for longer than `settle`
    assert watcher.check(), "a change settled for 1.3 s was not loaded by this poll"
    assert calls == [1]


def test_a_deleted_policy_file_waits_to_settle_like_any_other_change(tmp_path: Path) -> None:
    # A deploy that replaces `deny.yaml` by `deny-v2.yaml` deletes one and then writes the
    # other. The remaining files' times are old, so the deletion was loaded at the first
    # poll that saw it: the deny rules were out of force until the new file came.
    (tmp_path / "base.yaml").write_text(_policy("base"))
    (tmp_path / "deny.yaml").write_text(_policy("deny"))
    time.sleep(1.2)  # the files' times (ctime cannot be set back) are now older than settle
    calls: list[int] = []
    watcher = PolicyWatcher(tmp_path, lambda: calls.append(1), interval=30, settle=1.0)
    (tmp_path / "deny.yaml").unlink()
    assert not watcher.check(), "a deletion was loaded before it had settled"
    (tmp_path / "deny-v2.yaml").write_text(_policy("deny"))
    time.sleep(1.3)
    assert watcher.check() and calls == [1]  # one reload: the deploy as a whole


def test_a_policy_file_missing_for_a_moment_waits_to_settle(tmp_path: Path) -> None:
    # vim (`backupcopy=no`) renames the file away and then writes a new one; `rm p.yaml &&
    # cp new.yaml p.yaml`, `rm -rf policies && mv new policies` do the same. While the path
    # is missing it has no times to say how long ago it changed, and the watcher loaded
    # the deletion at the first poll that saw it: a reload failure logged and counted
    # (`MCPGuardPolicyReloadFailed` pages) for a routine save.
    path = tmp_path / "p.yaml"
    path.write_text(_policy("a"))
    calls: list[int] = []
    watcher = PolicyWatcher(path, lambda: calls.append(1), interval=30, settle=1.0)
    path.rename(tmp_path / "p.yaml~")
    assert not watcher.check(), "a missing policy file was loaded before it had settled"
    path.write_text(_policy("b"))
    time.sleep(1.3)
    assert watcher.check() and calls == [1]  # one reload: the new file


def test_a_policy_file_gone_for_good_is_still_reported(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    path.write_text(_policy("a"))
    calls: list[int] = []
    watcher = PolicyWatcher(path, lambda: calls.append(1), interval=30, settle=0.2)
    path.unlink()
    assert not watcher.check()
    time.sleep(0.3)
    assert watcher.check() and calls == [1]  # the holder then reports the failed load


FULL = """name: db
default_effect: deny
rules:
  - name: readers_query
    effect: allow
    agents: {roles: [reader]}
    tools: {names: [query]}
"""
PREFIX = FULL[: FULL.index("    agents:")]  # valid YAML: `readers_query` allows everything


def test_a_write_starting_between_the_watchers_check_and_the_load_is_not_put_in_force(
    tmp_path: Path, monkeypatch: Any
) -> None:
    # The watcher decides a change has settled and hashes the files; the holder then reads
    # them again to load them. A writer that truncates and writes in pieces (`cp`, `cat >`)
    # starting in between had its first piece loaded: a cut-off policy that allows more,
    # in force until the rest had landed and settled.
    path = tmp_path / "db.yaml"
    path.write_text(_policy("a"))
    digest = reload_mod._digest
    writes: list[str] = []

    def digest_then_a_writer_starts(p: Path) -> str:
        out = digest(p)
        if writes:
            with path.open("w") as f:  # truncates; the rest is still to come
                f.write(writes.pop())
        return out

    monkeypatch.setattr(reload_mod, "_digest", digest_then_a_writer_starts)
    holder = PolicyHolder(path)
    watcher = PolicyWatcher(path, holder._reload_quietly, interval=30, settle=0.2)
    holder._watcher = watcher  # (the holder's own, without its polling thread)
    try:
        path.write_text(FULL)
        time.sleep(0.3)
        writes.append(PREFIX)
        watcher.check()
        assert holder.live.policies[0].text != PREFIX, (
            "a policy file being written was put in force half-written"
        )
        path.write_text(FULL)  # the writer finishes
        time.sleep(0.3)
        watcher.check()
        assert holder.live.policies[0].text == FULL
    finally:
        holder.close()
