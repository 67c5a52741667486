"""Policy lifecycle: `PolicyWatcher` reloads on a real, settled change only and survives a
failing callback; `add_policy` / `reload_policies` keep replayable texts, follow the source
and report what they refuse or drop."""

from __future__ import annotations

import dataclasses
import logging
import os
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from fastmcp import Client, FastMCP

from guard import GuardMiddleware, PolicyError, Principal, load_policies
from guard.audit import open_store
from guard.policy import policy, rule
from guard.policy.spec import PolicySpec, RuleSpec
from guard.reload import PolicyHolder, PolicyWatcher, policy_files
from guard.telemetry import NoTelemetry


def test_touch_without_change_does_not_reload(tmp_path: Path) -> None:
    file = tmp_path / "p.yaml"
    file.write_text("name: a\nrules: []\n")
    calls: list[int] = []
    watcher = PolicyWatcher(file, lambda: calls.append(1), interval=60, settle=0)
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
    watcher = PolicyWatcher(tmp_path, lambda: calls.append(1), interval=60, settle=0)
    assert policy_files(tmp_path) == [tmp_path / "a.yaml"]
    (tmp_path / "notes.txt").write_text("still not a policy")
    assert watcher.check() is False
    # what the loader does not read does not reload: subdirectories, JSON, dotfiles
    (tmp_path / "old").mkdir()
    (tmp_path / "old" / "a.yaml").write_text("name: old\nrules: []\n")
    (tmp_path / "a.json").write_text("{}")
    (tmp_path / ".a.yaml.swp").write_text("swap")
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

    watcher = PolicyWatcher(file, boom, interval=60, settle=0)
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


BOB = Principal("bob", roles=("reader",))


def _server() -> FastMCP[Any]:
    mcp: FastMCP[Any] = FastMCP("db")

    @mcp.tool
    def query(sql: str) -> str:
        return "rows"

    @mcp.tool
    def drop_table(name: str) -> str:
        return f"dropped {name}"

    return mcp


async def _tools(mw: GuardMiddleware) -> list[str]:
    mcp = _server()
    mcp.add_middleware(mw)
    async with Client(mcp) as client:
        return sorted(t.name for t in await client.list_tools())


def _wait_for(predicate: Any, timeout: float = 3.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return False


def _policy(name: str, tool: str) -> str:
    return (
        f"name: {name}\ndefault_effect: deny\nrules:\n"
        f"  - {{name: r, effect: allow, tools: {{names: [{tool}]}}}}\n"
    )


async def test_watch_follows_the_source_that_reload_policies_switched_to(tmp_path: Path) -> None:
    # `reload_policies(new_path)` moves the watch to the new path.
    old, new = tmp_path / "old.yaml", tmp_path / "new.yaml"
    old.write_text(_policy("old", "query"))
    new.write_text(_policy("new", "query"))
    mw = GuardMiddleware(old, principal=BOB, audit=None, telemetry=False, watch=0.05)
    try:
        mw.reload_policies(new)
        assert mw.get_policy_names() == ["new"]
        new.write_text(_policy("new2", "query"))
        assert _wait_for(lambda: mw.get_policy_names() == ["new2"]), (
            f"edit of the new source not reloaded: {mw.get_policy_names()}"
        )
    finally:
        mw.close()


async def test_add_policy_of_a_plain_policyspec_is_replayable(tmp_path: Path) -> None:
    # A hand-made PolicySpec is validated and given a text, stored for replay.
    store_path = tmp_path / "records.duckdb"
    mw = GuardMiddleware(_policy("base", "query"), principal=BOB, audit=str(store_path),
                         telemetry=False)  # fmt: skip
    mw.add_policy(PolicySpec("extra", rules=(RuleSpec("drops", "allow"),)))
    assert "drop_table" in await _tools(mw)
    decided = mw.policy_set.hash
    mw.close()
    store = open_store(store_path)
    texts = store.policy_texts(decided)
    assert "" not in texts, f"empty policy text stored for set {decided[:12]}: {texts!r}"
    assert load_policies(texts).hash == decided


async def test_add_policy_of_an_edited_spec_changes_the_hash(tmp_path: Path) -> None:
    # `dataclasses.replace` keeps a loaded spec's text: the text is redone when it no
    # longer says what the spec holds, so the hash changes with the decisions.
    store_path = tmp_path / "records.duckdb"
    mw = GuardMiddleware(_policy("db", "query"), principal=BOB, audit=str(store_path),
                         telemetry=False)  # fmt: skip
    before = mw.policy_set
    opened = dataclasses.replace(before.policies[0], default_effect="allow")
    mw.add_policy(opened)  # replaces `db`: now everything not matched is allowed
    assert "drop_table" in await _tools(mw)
    after = mw.policy_set
    mw.close()
    assert after.default_allowed and not before.default_allowed
    assert after.hash != before.hash, "two sets that decide differently share one hash"


FULL = """name: db
default_effect: allow
rules:
  - name: readers_query
    effect: allow
    agents: {roles: [reader]}
    tools: {names: [query]}
  - name: no_drops
    effect: deny
    tools: {names: [drop_table]}
"""


async def test_a_half_written_policy_file_is_not_put_in_force(tmp_path: Path) -> None:
    # A writer that truncates and writes in chunks (nano, `cat >`, scp) is polled
    # mid-write; the prefix is valid YAML whose `readers_query` rule has no matchers yet
    # (allows everything). A change is loaded only once the file has settled.
    path = tmp_path / "db.yaml"
    path.write_text(FULL)
    mw = GuardMiddleware(path, principal=BOB, audit=None, telemetry=False, watch=0.05)
    try:
        assert await _tools(mw) == ["query"]
        cut = FULL.index("    agents:")
        with path.open("w") as f:  # truncate, then write in two chunks
            f.write(FULL[:cut])
            f.flush()
            time.sleep(0.3)  # the writer is slower than one poll
            seen_mid_write = await _tools(mw)
            f.write(FULL[cut:])
        assert seen_mid_write == ["query"], (
            f"half-written file put in force: reader could list {seen_mid_write}"
        )
    finally:
        mw.close()


def test_symlinked_policy_dir_swap_is_seen_with_normalized_mtimes(tmp_path: Path) -> None:
    # `policies -> releases/v1` swapped to `releases/v2` (ln -sfn, blue/green, Nix,
    # reproducible builds pinning mtimes): same names, sizes and mtimes, new files.
    releases = tmp_path / "releases"
    v1, v2 = releases / "v1", releases / "v2"
    v1.mkdir(parents=True)
    v2.mkdir()
    (v1 / "db.yaml").write_text(_policy("db", "query"))
    (v2 / "db.yaml").write_text(_policy("db", "drops"))  # same size, different rule target
    for f in (v1 / "db.yaml", v2 / "db.yaml"):
        os.utime(f, (1, 1))  # SOURCE_DATE_EPOCH / Nix store / tar --mtime
    link = tmp_path / "policies"
    link.symlink_to(v1, target_is_directory=True)
    mw = GuardMiddleware(link, audit=None, telemetry=False, watch=0.05)
    try:
        tmp_link = tmp_path / "policies.tmp"
        tmp_link.symlink_to(v2, target_is_directory=True)
        os.replace(tmp_link, link)  # atomic swap, as `ln -sfn` + rename
        assert load_policies(link).hash != mw.policy_set.hash
        assert _wait_for(lambda: mw.policy_set.hash == load_policies(link).hash), (
            "policy directory swapped behind its symlink, never reloaded"
        )
    finally:
        mw.close()


async def test_a_reload_from_the_file_drops_a_runtime_policy_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # A reload from the file drops a policy added at runtime (an incident block): it
    # says so, naming it.
    path = tmp_path / "db.yaml"
    path.write_text(FULL.replace("default_effect: allow", "default_effect: deny"))
    mw = GuardMiddleware(path, principal=BOB, audit=None, telemetry=False, watch=0.05)
    try:
        mw.add_policy(
            policy("incident").add_rule(rule("block_query").for_tools("query").deny()
                                        .with_priority(10_000)).build()
        )  # fmt: skip
        assert await _tools(mw) == []
        with caplog.at_level(logging.WARNING, "guard"):
            path.write_text(path.read_text() + "# unrelated comment\n")
            assert _wait_for(lambda: "incident" not in mw.get_policy_names(), timeout=4)
        assert mw.get_policy_names() == ["db"]
        assert "drops policies added at runtime: incident" in caplog.text
    finally:
        mw.close()


class _Reloads(NoTelemetry):
    def __init__(self) -> None:
        self.reloads: list[str] = []

    def policy_reload(self, result: str, policy_set: Any) -> None:
        self.reloads.append(result)


def test_a_rejected_add_policy_is_logged_and_counted(caplog: pytest.LogCaptureFixture) -> None:
    # A policy that cannot join the set in force is refused, logged and counted as a
    # failed reload, like a broken file.
    tel = _Reloads()
    mw = GuardMiddleware(_policy("db", "query") + "combining: first_match\n",
                         audit=None, telemetry=tel)  # fmt: skip
    draft = {"name": "extra", "combining": "deny_overrides",
             "rules": [{"name": "r", "effect": "allow"}]}  # fmt: skip
    with caplog.at_level(logging.WARNING, "guard"), pytest.raises(PolicyError):
        mw.add_policy(draft)
    assert tel.reloads[-1] == "error", f"no failed-reload metric: {tel.reloads}"
    assert "adding a policy failed" in caplog.text and "combining" in caplog.text
    assert mw.get_policy_names() == ["db"]


async def test_reload_to_a_source_that_is_no_path_stops_watching(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "db.yaml"
    path.write_text(_policy("db", "query"))
    mw = GuardMiddleware(path, principal=BOB, audit=None, telemetry=False, watch=0.05)
    try:
        with caplog.at_level(logging.WARNING, "guard"):
            mw.reload_policies(_policy("inline", "query"))
        assert "no longer watched" in caplog.text
        path.write_text(_policy("edited", "query"))
        time.sleep(1.5)  # longer than a change takes to settle and load
        assert mw.get_policy_names() == ["inline"]
    finally:
        mw.close()


async def test_a_listing_is_decided_by_one_policy_set_across_a_reload() -> None:
    """A reload that lands while a listing is being decided changes the next listing, not
    the rest of this one: every component of a listing has the same policy set."""
    from mw_support import Recorder

    open_all = "name: v1\nrules:\n  - {name: all, effect: allow, tools: {patterns: ['*']}}\n"
    mcp: FastMCP[Any] = FastMCP("s")
    for n in range(4):
        mcp.tool(lambda x: x, name=f"t{n}")
    recorder = Recorder()
    mw = GuardMiddleware(open_all, principal=Principal("u"), audit=None, telemetry=recorder)
    mcp.add_middleware(mw)

    class ReloadingCache:  # the components' cache: a reload lands at the second component
        def __init__(self, inner: Any) -> None:
            self.inner, self.seen = inner, 0

        def get(self, item: Any, server: Any = None) -> Any:
            self.seen += 1
            if self.seen == 2:
                mw.reload_policies("name: v2\nrules: []\n")  # denies everything
            return self.inner.get(item, server)

    mw._cache = ReloadingCache(mw._cache)  # type: ignore[assignment]
    async with Client(mcp) as client:
        assert [t.name for t in await client.list_tools()] == ["t0", "t1", "t2", "t3"]
        first = list(recorder.events)
        assert len({e.decision.policy_hash for e in first}) == 1
        assert await client.list_tools() == []  # the next listing: the new set
    assert {e.decision.policy_hash for e in recorder.events[len(first) :]} == {mw.policy_set.hash}


async def test_a_watched_shadow_draft_follows_its_file(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """With `watch`, the draft file is watched like the live one: an edit is decided in
    shadow (its texts recorded for replay), a broken edit keeps the draft decided so far,
    and enforcement never changes."""
    live, draft = tmp_path / "live.yaml", tmp_path / "draft.yaml"
    live.write_text(_policy("live", "query"))
    draft.write_text(_policy("draft", "query"))
    store = tmp_path / "records"
    mw = GuardMiddleware(live, principal=BOB, audit=store, telemetry=False, shadow=draft,
                         watch=0.05)  # fmt: skip
    mcp = _server()
    mcp.add_middleware(mw)
    try:
        first = mw.shadow_set
        assert first is not None and first.names == ("draft",)
        draft.write_text(_policy("draft2", "drop_table"))
        assert _wait_for(lambda: mw.shadow_set is not None and mw.shadow_set.names == ("draft2",))
        async with Client(mcp) as client:
            await client.call_tool("query", {"sql": "select 1"})
        assert mw.get_policy_names() == ["live"]
        with caplog.at_level(logging.WARNING, logger="guard.reload"):
            draft.write_text("name: broken\nrules: [oops")
            assert _wait_for(lambda: "shadow policy reload failed" in caplog.text)
        assert mw.shadow_set is not None and mw.shadow_set.names == ("draft2",)
    finally:
        mw.close()
    with open_store(store) as db:
        (shadow_hash,) = db.execute(
            "SELECT shadow_policy_hash FROM decisions WHERE method = 'tools/call'"
        ).fetchone()
        assert load_policies(db.policy_texts(shadow_hash)).names == ("draft2",)


async def test_a_draft_that_does_not_load_is_counted_apart_from_live_failures(
    tmp_path: Path,
) -> None:
    """A broken draft (a watched edit, or `set_shadow`) was only logged: nothing told an
    operator that shadow mode had stopped following the draft. It is counted as a
    `shadow_error` reload, which the live reload alert (`result="error"`) leaves alone."""
    from prometheus_client import CollectorRegistry

    from guard.telemetry import GuardTelemetry

    live, draft = tmp_path / "live.yaml", tmp_path / "draft.yaml"
    live.write_text(_policy("live", "query"))
    draft.write_text(_policy("draft", "query"))
    registry = CollectorRegistry()
    mw = GuardMiddleware(live, principal=BOB, audit=None, shadow=draft, watch=0.05,
                         telemetry=GuardTelemetry(registry=registry))  # fmt: skip

    def reloads(result: str) -> float:
        value = registry.get_sample_value("mcpguard_policy_reloads_total", {"result": result})
        return value or 0.0

    try:
        draft.write_text("name: broken\nrules: [oops")
        assert _wait_for(lambda: reloads("shadow_error") == 1)
        with pytest.raises(PolicyError):
            mw.set_shadow({"name": "bad", "rules": [{"name": "r", "effect": "maybe"}]})
        assert reloads("shadow_error") == 2
        assert reloads("error") == 0
        assert mw.shadow_set is not None and mw.shadow_set.names == ("draft",)
    finally:
        mw.close()


async def test_set_shadow_moves_the_draft_watch(tmp_path: Path) -> None:
    live, old, new = tmp_path / "live.yaml", tmp_path / "old.yaml", tmp_path / "new.yaml"
    live.write_text(_policy("live", "query"))
    old.write_text(_policy("old", "query"))
    new.write_text(_policy("new", "query"))
    mw = GuardMiddleware(live, principal=BOB, audit=None, telemetry=False, shadow=old,
                         watch=0.05)  # fmt: skip
    try:
        mw.set_shadow(new)
        old.write_text(_policy("old2", "query"))
        new.write_text(_policy("new2", "query"))
        assert _wait_for(lambda: mw.shadow_set is not None and mw.shadow_set.names == ("new2",))
        time.sleep(0.3)  # several polls: the old draft's edit is not picked up
        assert mw.shadow_set.names == ("new2",)
        mw.set_shadow(None)
        new.write_text(_policy("new3", "query"))
        time.sleep(1.5)  # longer than the settle time
        assert mw.shadow_set is None
        assert not [t for t in threading.enumerate() if t.name.endswith((":old.yaml", ":new.yaml"))]
    finally:
        mw.close()


async def test_the_watcher_does_not_reload_what_an_explicit_reload_put_in_force(
    tmp_path: Path,
) -> None:
    # An operator edits the file and reloads at once, then blocks a tool during an
    # incident. The watcher, seeing the edit settle a second later, must not reload the
    # same content again: that would drop the incident block (and restore a policy
    # removed at runtime) though nothing in the source changed.
    path = tmp_path / "db.yaml"
    path.write_text(_policy("db", "query"))
    mw = GuardMiddleware(path, principal=BOB, audit=None, telemetry=False, watch=0.05)
    try:
        path.write_text(_policy("db2", "query"))
        mw.reload_policies()
        mw.add_policy(
            policy("incident").add_rule(rule("block_query").for_tools("query").deny()
                                        .with_priority(10_000)).build()
        )  # fmt: skip
        assert await _tools(mw) == []
        time.sleep(1.5)  # longer than the edit takes to settle and be seen
        assert mw.get_policy_names() == ["db2", "incident"]
        assert await _tools(mw) == [], "the incident block was dropped by a reload of nothing"
    finally:
        mw.close()


async def test_a_policy_set_compiled_from_plain_specs_is_replayable(tmp_path: Path) -> None:
    # `PolicySet.from_specs` with hand-made specs (its own docstring's example), live and
    # in shadow: every hash a record carries has texts in the store that load to it.
    from guard import PolicySet

    store_path = tmp_path / "records.duckdb"
    live = PolicySet.from_specs([PolicySpec("svc", rules=(RuleSpec("all", "allow"),))])
    draft = PolicySet.from_specs([PolicySpec("draft", rules=(RuleSpec("none", "deny"),))])
    mw = GuardMiddleware(live, principal=BOB, audit=str(store_path), telemetry=False,
                         shadow=draft)  # fmt: skip
    assert await _tools(mw) == ["drop_table", "query"]
    mw.close()
    with open_store(store_path) as store:
        hashes = store.execute(
            "SELECT DISTINCT policy_hash FROM decisions UNION "
            "SELECT DISTINCT shadow_policy_hash FROM decisions"
        ).fetchall()
        assert len(hashes) == 2
        for (decided,) in hashes:
            texts = store.policy_texts(decided)  # raises: texts that do not hash to it
            assert load_policies(texts).hash == decided


async def test_a_policy_set_compiled_from_edited_specs_has_its_own_hash(tmp_path: Path) -> None:
    # `dataclasses.replace` keeps a loaded spec's text: a set compiled from the edited
    # spec, put in force or in shadow, must not carry the hash (and replay the texts) of
    # the set it was edited from, which decides differently.
    from guard import PolicySet

    store_path = tmp_path / "records.duckdb"
    base = load_policies(_policy("db", "query"))
    opened = PolicySet.from_specs([dataclasses.replace(base.policies[0], default_effect="allow")])
    mw = GuardMiddleware(base, principal=BOB, audit=str(store_path), telemetry=False,
                         shadow=opened)  # fmt: skip
    assert await _tools(mw) == ["query"]
    mw.close()
    with open_store(store_path) as store:
        rows = store.execute(
            "SELECT policy_hash, shadow_policy_hash, shadow_allowed FROM decisions "
            "WHERE resource = 'drop_table'"
        ).fetchall()
        [(live_hash, shadow_hash, shadow_allowed)] = rows
        assert shadow_allowed is True
        assert shadow_hash != live_hash, "two sets that decide differently share one hash"
        assert load_policies(store.policy_texts(shadow_hash)).default_allowed


async def test_reload_back_to_a_path_watches_it_again(tmp_path: Path) -> None:
    # `watch=` was asked for: a reload to inline text stops watching (nothing to poll),
    # a later reload to a file is watched again, as any reload to a new path is.
    path = tmp_path / "db.yaml"
    path.write_text(_policy("db", "query"))
    mw = GuardMiddleware(path, principal=BOB, audit=None, telemetry=False, watch=0.05)
    try:
        mw.reload_policies(_policy("inline", "query"))
        mw.reload_policies(path)
        assert mw.get_policy_names() == ["db"]
        path.write_text(_policy("edited", "query"))
        assert _wait_for(lambda: mw.get_policy_names() == ["edited"]), (
            f"the path reloaded to is not watched: {mw.get_policy_names()}"
        )
    finally:
        mw.close()


async def test_a_policy_path_under_home_written_with_a_tilde_is_watched(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The loader reads `~/policies.yaml` from the home directory; the watch looked for a
    # file literally called `~/policies.yaml`: a guard with `watch=True` refused to start,
    # and `reload_policies("~/new.yaml")` stopped watching ("not a path").
    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / "db.yaml").write_text(_policy("db", "query"))
    (tmp_path / "new.yaml").write_text(_policy("new", "query"))
    mw = GuardMiddleware("~/db.yaml", principal=BOB, audit=None, telemetry=False, watch=0.05)
    try:
        mw.reload_policies("~/new.yaml")
        (tmp_path / "new.yaml").write_text(_policy("edited", "query"))
        assert _wait_for(lambda: mw.get_policy_names() == ["edited"])
    finally:
        mw.close()


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_forked_child_keeps_watching_its_policies(tmp_path: Path) -> None:
    """A pre-fork server (gunicorn --preload) makes the guard in the parent and serves in
    forked children. The watcher's thread does not survive a fork: before the fix a child
    decided with the policies of the moment of the fork forever, an edit revoking access
    never reaching the processes that serve."""
    file = tmp_path / "p.yaml"
    file.write_text("name: before\ndefault_effect: allow\nrules: []\n")
    holder = PolicyHolder(file, watch=0.02)
    try:
        pid = os.fork()
        if pid == 0:  # a worker: sees the edit (once settled, a second) or exits 1
            code = 1
            try:
                file.write_text("name: after\ndefault_effect: deny\nrules: []\n")
                deadline = time.monotonic() + 10
                while time.monotonic() < deadline:
                    if holder.live.names == ("after",):
                        code = 0
                        break
                    time.sleep(0.02)
            finally:
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0, "the child never saw the edit"
    finally:
        holder.close()
