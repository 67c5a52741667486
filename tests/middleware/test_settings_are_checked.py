"""GuardMiddleware refuses, at construction and naming the parameter, a setting that would
fail later or silently."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from guard import GuardMiddleware
from guard.reload import PolicyWatcher

POLICY = "name: p\ndefault_effect: allow\nrules: []\n"


@pytest.fixture
def policy_file(tmp_path: Path) -> Path:
    path = tmp_path / "policies.yaml"
    path.write_text(POLICY)
    return path


@pytest.mark.parametrize("watch", [float("nan"), float("inf"), threading.TIMEOUT_MAX * 2, -1])
def test_a_watch_interval_no_thread_can_wait_is_refused(policy_file: Path, watch: float) -> None:
    # the watcher thread died at its first wait: edits were never picked up, without a word
    with pytest.raises(ValueError, match="watch"):
        GuardMiddleware(policy_file, audit=None, telemetry=False, watch=watch)
    with pytest.raises(ValueError, match="watch"):
        PolicyWatcher(policy_file, lambda: None, interval=watch)


@pytest.mark.parametrize("watch", ["yes", "1", [1]])
def test_a_watch_interval_that_is_not_a_number_is_refused(policy_file: Path, watch: object) -> None:
    with pytest.raises(TypeError, match="watch"):
        GuardMiddleware(policy_file, audit=None, telemetry=False, watch=watch)  # type: ignore[arg-type]


@pytest.mark.parametrize("watch", [False, None, 0, True, 0.5])
def test_documented_watch_values_still_work(policy_file: Path, watch: object) -> None:
    guard = GuardMiddleware(policy_file, audit=None, telemetry=False, watch=watch)  # type: ignore[arg-type]
    try:
        watcher = guard._holder._watcher
        assert (watcher is None) == (watch in (False, None, 0))
        if watcher is not None:
            assert watcher.interval == (1.0 if watch is True else watch)
    finally:
        guard.close()


@pytest.mark.parametrize("ttl", [float("nan"), float("inf"), -1])
def test_a_lookup_ttl_that_bounds_nothing_is_refused(ttl: float) -> None:
    # infinity: a component re-registered with new tags was decided on its old ones forever
    with pytest.raises(ValueError, match="lookup_ttl"):
        GuardMiddleware(POLICY, audit=None, telemetry=False, lookup_ttl=ttl)


@pytest.mark.parametrize("ttl", ["1", None, True])
def test_a_lookup_ttl_that_is_not_a_number_is_refused(ttl: object) -> None:
    with pytest.raises(TypeError, match="lookup_ttl"):
        GuardMiddleware(POLICY, audit=None, telemetry=False, lookup_ttl=ttl)  # type: ignore[arg-type]


@pytest.mark.parametrize("value", ["no", "false", 0, None])
def test_explicit_denials_must_be_a_bool(value: object) -> None:
    """`explicit_denials="no"` is truthy: denials would name the rule, and so say that the
    hidden component exists. Only `True` turns that on."""
    with pytest.raises(TypeError, match="explicit_denials"):
        GuardMiddleware(POLICY, explicit_denials=value, audit=None, telemetry=False)  # type: ignore[arg-type]


@pytest.mark.parametrize("watch", [1e-9, 0.0009])
def test_a_watch_interval_that_would_spin_the_watcher_is_refused(
    policy_file: Path, watch: float
) -> None:
    # 1e-9 s: the watcher thread polled without pause, stat after stat
    with pytest.raises(ValueError, match="watch"):
        GuardMiddleware(policy_file, audit=None, telemetry=False, watch=watch)
    with pytest.raises(ValueError, match="watch"):
        PolicyWatcher(policy_file, lambda: None, interval=watch)
