"""A closed guard's policies no longer change. Found in review: `reload_policies`,
`add_policy`, `remove_policy` and `set_shadow` after `close()` still swapped the set (and
told the telemetry, whose policy series the close had let go of), and a watcher poll
still running at close put an edit in force after it; the guard is done at `close()`:
those calls raise `GuardClosedError`, and a late poll changes nothing and reports
nothing."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from mw_support import Recorder

from guard import GuardError, GuardMiddleware
from guard.errors import GuardClosedError
from guard.policy import policy

LIVE = "name: live\ndefault_effect: deny\nrules: []\n"
EDITED = "name: live\ndefault_effect: allow\nrules: []\n"


def _closed_guard(tmp_path: Path) -> tuple[GuardMiddleware, Recorder, Path]:
    path = tmp_path / "live.yaml"
    path.write_text(LIVE)
    telemetry = Recorder()
    mw = GuardMiddleware(
        str(path), audit=tmp_path / "audit", telemetry=telemetry, watch=0.05,
        shadow={"name": "draft", "rules": []},
    )  # fmt: skip
    mw.close()
    return mw, telemetry, path


@pytest.mark.parametrize(
    "change",
    [
        lambda mw, path: mw.reload_policies(),
        lambda mw, path: mw.reload_policies(EDITED),
        lambda mw, path: mw.add_policy(policy("extra").allow_by_default().build()),
        lambda mw, path: mw.remove_policy("live"),
        lambda mw, path: mw.set_shadow(EDITED),
        lambda mw, path: mw.set_shadow(None),
    ],
    ids=["reload", "reload_new_source", "add", "remove", "set_shadow", "end_shadow"],
)
def test_a_closed_guard_refuses_to_change_its_policies(tmp_path: Path, change: object) -> None:
    mw, telemetry, path = _closed_guard(tmp_path)
    path.write_text(EDITED)
    live, shadow, reported = mw.policy_set, mw.shadow_set, list(telemetry.reloads)
    with pytest.raises(GuardClosedError, match="closed") as raised:
        change(mw, path)  # type: ignore[operator]
    assert isinstance(raised.value, GuardError)
    assert mw.policy_set is live and mw.shadow_set is shadow
    assert telemetry.reloads == reported


def test_a_watcher_poll_running_at_close_changes_nothing(tmp_path: Path) -> None:
    path = tmp_path / "live.yaml"
    path.write_text(LIVE)
    telemetry = Recorder()
    mw = GuardMiddleware(str(path), audit=None, telemetry=telemetry, watch=3600)
    watcher = mw._holder._watcher
    assert watcher is not None
    live, reported = mw.policy_set, list(telemetry.reloads)
    mw.close()
    path.write_text(EDITED)
    time.sleep(1.1)  # settled
    watcher.check()  # the poll that was running when the guard closed
    assert mw.policy_set is live
    assert telemetry.reloads == reported  # no reload, and no failed one either
