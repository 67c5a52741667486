"""A policy set's texts are recorded before it decides anything: a reload, `add_policy`
or a new shadow draft swapped the set in first and recorded its texts after, so a
decision made in between could be written (in durable mode, fsync'd) naming a set whose
texts were still only in memory: a `kill -9` there left records replay could never
re-decide (found in review)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from guard import GuardMiddleware, Principal
from guard.audit import AuditLog

LIVE = {"name": "live", "rules": [{"name": "r", "effect": "allow", "actions": ["list"]}]}


class Watching(AuditLog):
    """Notes, at each recording, which sets the guard has in force."""

    guard: GuardMiddleware | None = None
    seen: list[tuple[str, str, str | None]]

    def record_policies(self, policy_set: Any) -> None:
        if self.guard is not None:
            shadow = self.guard.shadow_set
            live = self.guard.policy_set.hash
            self.seen.append((policy_set.hash, live, shadow.hash if shadow else None))
        super().record_policies(policy_set)


def test_texts_are_recorded_before_the_set_is_put_in_force(tmp_path: Path) -> None:
    audit = Watching(tmp_path / "s")
    audit.seen = []
    guard = GuardMiddleware(LIVE, principal=Principal("a"), audit=audit, telemetry=False)
    audit.guard = guard
    try:
        first = guard.policy_set.hash
        new = guard.reload_policies({**LIVE, "version": "2"})
        draft = guard.set_shadow({"name": "draft", "rules": []})
        guard.add_policy({"name": "more", "rules": []})
        added = guard.policy_set.hash
        assert draft is not None and added != new.hash
        assert audit.seen == [
            (new.hash, first, None),  # recorded while the old set was still in force
            (draft.hash, new.hash, None),
            (added, new.hash, draft.hash),
        ]
    finally:
        guard.close()
