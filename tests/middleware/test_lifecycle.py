"""Policies change while the server runs: explicit reload, hot reload, add/remove, shadow."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import pytest
from fastmcp import Client
from fastmcp.exceptions import ToolError
from mw_support import POLICY, Recorder, demo_server

from guard import GuardMiddleware, PolicyError, Principal
from guard.policy import policy, rule

ALICE = Principal("alice", roles=("user",))
ONLY_ECHO = """
name: demo
default_effect: deny
rules:
  - {name: echo_only, effect: allow, tools: {names: [echo]}, actions: [list, call]}
"""
ECHO_AND_DROP = ONLY_ECHO + (
    "  - {name: drop_too, effect: allow, tools: {names: [drop_table]}, actions: [list, call]}\n"
)
BROKEN = """
name: demo
default_effect: deny
rules:
  - name: oops
    effect: maybe
"""


async def _tools(mw: GuardMiddleware) -> list[str]:
    mcp = demo_server()
    mcp.add_middleware(mw)
    async with Client(mcp) as client:
        return sorted(t.name for t in await client.list_tools())


async def test_reload_to_a_good_policy_swaps_the_set(tmp_path: Path, recorder: Recorder) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text(ONLY_ECHO)
    mw = GuardMiddleware(path, principal=ALICE, audit=None, telemetry=recorder)
    old_hash = mw.policy_set.hash
    assert await _tools(mw) == ["echo"]
    path.write_text(ECHO_AND_DROP)
    new = mw.reload_policies()
    assert new is mw.policy_set and new.hash != old_hash
    assert await _tools(mw) == ["drop_table", "echo"]
    assert recorder.reloads[-1] == ("ok", new)
    assert {e.decision.policy_hash for e in recorder.events} == {old_hash, new.hash}


async def test_reload_to_a_broken_policy_keeps_the_old_one(
    tmp_path: Path, recorder: Recorder, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text(ONLY_ECHO)
    mw = GuardMiddleware(path, principal=ALICE, audit=None, telemetry=recorder)
    before = mw.policy_set
    path.write_text(BROKEN)
    with caplog.at_level(logging.WARNING, "guard.reload"), pytest.raises(PolicyError):
        mw.reload_policies()
    assert mw.policy_set is before
    assert await _tools(mw) == ["echo"]
    assert recorder.reloads[-1] == ("error", before)
    assert "policy.yaml" in caplog.text and "keeping policy set" in caplog.text


async def test_a_broken_policy_is_logged_without_the_credentials_it_quotes(
    tmp_path: Path, recorder: Recorder, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text(ONLY_ECHO)
    mw = GuardMiddleware(path, principal=ALICE, audit=None, telemetry=recorder)
    key = "sk-live-" + "7f3a9c" * 4
    # an invalid regex: the load error quotes the value, key and all
    path.write_text(
        ONLY_ECHO
        + f"""
  - name: by_key
    effect: allow
    tools: {{patterns: ["*"]}}
    conditions:
      - {{field: tool.args.token, operator: regex, value: "{key}(("}}
"""
    )
    with caplog.at_level(logging.WARNING, "guard.reload"), pytest.raises(PolicyError) as raised:
        mw.reload_policies()
    assert key in str(raised.value)  # the operator who reloads is told exactly
    assert "invalid regex" in caplog.text and "<redacted:secret>((" in caplog.text
    assert key not in caplog.text


async def test_hot_reload_follows_the_file_and_survives_a_broken_edit(
    tmp_path: Path, recorder: Recorder
) -> None:
    path = tmp_path / "policies"
    path.mkdir()
    (path / "demo.yaml").write_text(ONLY_ECHO)
    mw = GuardMiddleware(path, principal=ALICE, audit=None, telemetry=recorder, watch=0.05)
    try:
        first = mw.policy_set
        (path / "demo.yaml").write_text(ECHO_AND_DROP)
        _wait_for(lambda: mw.policy_set is not first)
        second = mw.policy_set
        assert await _tools(mw) == ["drop_table", "echo"]
        (path / "demo.yaml").write_text(BROKEN)
        _wait_for(lambda: recorder.reloads and recorder.reloads[-1][0] == "error")
        assert mw.policy_set is second  # the broken edit never took effect
        assert await _tools(mw) == ["drop_table", "echo"]
    finally:
        mw.close()


def _wait_for(predicate: object, timeout: float = 10.0) -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()  # type: ignore[operator]
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError("condition not reached in time")


async def test_add_and_remove_policy_at_runtime(recorder: Recorder) -> None:
    mw = GuardMiddleware(ONLY_ECHO, principal=ALICE, audit=None, telemetry=recorder)
    extra = policy("extra").add_rule(rule("drop").for_tools("drop_table").allow()).build()
    mw.add_policy(extra)
    assert sorted(mw.get_policy_names()) == ["demo", "extra"]
    assert "drop_table" in await _tools(mw)
    assert mw.remove_policy("extra") is True
    assert mw.remove_policy("extra") is False
    assert await _tools(mw) == ["echo"]


async def test_shadow_decision_travels_with_the_live_one(recorder: Recorder) -> None:
    mw = GuardMiddleware(
        ONLY_ECHO, principal=ALICE, audit=None, telemetry=recorder, shadow=ECHO_AND_DROP
    )
    mcp = demo_server()
    mcp.add_middleware(mw)
    async with Client(mcp) as client:
        with pytest.raises(ToolError):  # the draft would allow it, but it is never enforced
            await client.call_tool("drop_table", {"name": "t"})
    event = recorder.events[-1]
    assert event.decision.allowed is False
    assert event.shadow is not None and event.shadow.allowed is True
    assert event.shadow.rule == "drop_too"
    assert event.shadow.policy_hash == mw.shadow_set.hash != event.decision.policy_hash  # type: ignore[union-attr]


async def test_the_shadow_draft_changes_while_the_server_runs(
    tmp_path: Path, recorder: Recorder, caplog: pytest.LogCaptureFixture
) -> None:
    """`set_shadow` swaps the draft (its texts recorded for replay), keeps it when the new
    one does not load, and `None` ends shadow mode; enforcement never changes."""
    from guard.audit import open_store

    mw = GuardMiddleware(ONLY_ECHO, principal=ALICE, audit=tmp_path / "audit", telemetry=recorder)
    mcp = demo_server()
    mcp.add_middleware(mw)
    async with Client(mcp) as client:

        async def drop() -> None:
            with pytest.raises(ToolError):  # never enforced, whatever the draft says
                await client.call_tool("drop_table", {"name": "t"})

        await drop()
        assert recorder.events[-1].shadow is None
        draft = mw.set_shadow(ECHO_AND_DROP)
        assert draft is mw.shadow_set and draft is not None
        await drop()
        assert recorder.events[-1].shadow.allowed is True  # type: ignore[union-attr]
        assert recorder.events[-1].shadow.policy_hash == draft.hash  # type: ignore[union-attr]
        with caplog.at_level(logging.WARNING, "guard.reload"), pytest.raises(PolicyError):
            mw.set_shadow(BROKEN)
        assert mw.shadow_set is draft and "keeping shadow set" in caplog.text
        await drop()
        assert recorder.events[-1].shadow.policy_hash == draft.hash  # type: ignore[union-attr]
        assert mw.set_shadow(None) is None and mw.shadow_set is None
        await drop()
        assert recorder.events[-1].shadow is None
    mw.close()
    with open_store(tmp_path / "audit") as store:
        rows = store.sql(
            "SELECT shadow_policy_hash FROM decisions WHERE resource = 'drop_table' ORDER BY ts"
        ).fetchall()
        assert [r[0] for r in rows] == [None, draft.hash, draft.hash, None]
        assert store.policy_texts(draft.hash)  # replay can rebuild the draft


def test_policy_sources_are_all_accepted() -> None:
    for source in (POLICY, ONLY_ECHO, policy("p").allow_by_default().build()):
        mw = GuardMiddleware(source, audit=None, telemetry=False)
        assert mw.policy_set.hash


async def test_reload_from_a_new_directory_as_on_the_seed_page(
    tmp_path: Path, recorder: Recorder
) -> None:
    mw = GuardMiddleware(ONLY_ECHO, principal=ALICE, audit=None, telemetry=recorder)
    updated = tmp_path / "updated_policies"
    updated.mkdir()
    (updated / "a.yaml").write_text(ECHO_AND_DROP)
    mw.reload_policies(f"{updated}/")
    assert await _tools(mw) == ["drop_table", "echo"]
    (updated / "a.yaml").write_text(ONLY_ECHO)
    mw.reload_policies()  # the new directory is now where policies come from
    assert await _tools(mw) == ["echo"]


async def test_a_broken_shadow_policy_is_logged_without_the_credentials_it_quotes(
    tmp_path: Path, recorder: Recorder, caplog: pytest.LogCaptureFixture
) -> None:
    mw = GuardMiddleware(ONLY_ECHO, principal=ALICE, audit=None, telemetry=recorder)
    key = "ghp_" + "Q7" * 18
    draft = tmp_path / "draft.yaml"
    rule = f'{{field: tool.args.t, operator: regex, value: "{key}("}}'
    draft.write_text(
        ONLY_ECHO
        + f"  - {{name: by_key, effect: allow, tools: {{names: [t]}}, conditions: [{rule}]}}\n"
    )
    with caplog.at_level(logging.WARNING, "guard.reload"), pytest.raises(PolicyError):
        mw.set_shadow(draft)
    assert "shadow policy load failed" in caplog.text and "<redacted:secret>" in caplog.text
    assert key not in caplog.text
