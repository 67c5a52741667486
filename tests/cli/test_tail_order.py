"""`mcp-guard tail` prints a listing's records in the order of the listing."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner

from guard.audit import AuditLog
from guard.cli import main
from guard.events import DecisionEvent
from guard.policy import AccessRequest, Principal, Resource, load_policies


def test_a_listing_tails_in_item_order(tmp_path: Path) -> None:
    """A listing's records share their time: ordered by time alone they came out in any
    order (`L.3` before `L.2`, as the demo's store showed), and `L.10` sorts before `L.2`
    as text. "Oldest first" means the listing's own order."""
    policies = load_policies({"name": "p", "rules": [{"name": "r", "effect": "allow"}]})
    alice = Principal("alice", ("user",))
    events = []
    for n in range(1, 13):
        request = AccessRequest(alice, Resource("tool", f"t{n}"), "list")
        events.append(
            DecisionEvent(f"L.{n}", request, policies.decide(request), method="tools/list")
        )
    log = AuditLog(tmp_path / "s")
    log.append_listing("L", events)
    log.close()
    result = CliRunner().invoke(main, ["tail", str(tmp_path / "s"), "-n", "12"])
    assert result.exit_code == 0, result.output
    ids = [json.loads(line)["decision_id"] for line in result.output.splitlines()]
    assert ids == [f"L.{n}" for n in range(1, 13)]


def test_tail_prints_times_in_utc_whatever_the_machine_zone(tmp_path: Path) -> None:
    """Decision times are recorded in UTC; `tail` printed them in the machine's zone
    (`2025-06-02 18:50:58.17-05`), so the same store tailed on two CI runners differed."""
    policies = load_policies({"name": "p", "rules": [{"name": "r", "effect": "allow"}]})
    request = AccessRequest(Principal("alice", ("user",)), Resource("tool", "t"), "call")
    log = AuditLog(tmp_path / "s")
    log.append(DecisionEvent("d1", request, policies.decide(request), method="tools/call"))
    log.close()
    repo = str(Path(__file__).resolve().parents[2])
    shown = []
    for zone in ("UTC", "America/New_York", "Asia/Kolkata"):
        result = subprocess.run(
            [sys.executable, "-m", "guard.cli", "tail", str(tmp_path / "s")],
            env={**os.environ, "TZ": zone, "PYTHONPATH": repo},
            capture_output=True, text=True, check=True, timeout=60,
        )  # fmt: skip
        shown.append(json.loads(result.stdout)["ts"])
    assert shown[0] == shown[1] == shown[2], shown
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", shown[0]), shown[0]
