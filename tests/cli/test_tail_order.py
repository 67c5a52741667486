"""`mcp-guard tail` prints a listing's records in the order of the listing."""

from __future__ import annotations

import json
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
