"""`AuditLog` keeps the redaction of a request context that requests from one place share
(walking it for secrets cost ~1.2 µs a call) and gives it again only while the context
holds the same text: a context changed after its first record, in place, behind the same
object, must be redacted again, never recorded as it was redacted before.

(Each record here is written before the context changes: a record holds a context that
needed no redaction as the object itself until the writer encodes it.)"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from pathlib import Path
from types import MappingProxyType
from typing import Any

from audit_kit import BEARER, event
from replay_helpers import rows

from guard.audit import AuditLog, verify


def _recorded(store: Path, contexts: list[Callable[[], Any]], **log: Any) -> list[Any]:
    """Record one decision per context (each made when its decision is queued) and a
    listing under the last; `(context, inputs_redacted)` of each record, in order."""
    audit = AuditLog(store, **log)
    ids = []
    for n, make in enumerate(contexts):
        ev = event(n)
        ev = dataclasses.replace(ev, request=dataclasses.replace(ev.request, context=make()))
        audit.append(ev)
        audit.flush()
        ids.append(ev.decision_id)
    listed = dataclasses.replace(ev, decision_id="L.1", request=dataclasses.replace(
        ev.request, args={}, action="list"))  # fmt: skip
    audit.append_listing("L", [listed])
    audit.close()
    assert verify(store).ok
    got = {r["decision_id"]: r for r in rows(store)}
    return [(json.loads(got[d]["context"]), got[d]["inputs_redacted"]) for d in [*ids, "L.1"]]


def _store_bytes(store: Path) -> bytes:
    return b"".join(p.read_bytes() for p in store.rglob("*") if p.is_file())


def test_a_context_changed_in_place_is_redacted_again(tmp_path: Path) -> None:
    text: dict[str, Any] = {"transport": "http", "session_id": "s1", "server": "weather"}
    shared = MappingProxyType(text)  # one object, as `guard._request` shares it

    def changed() -> Any:
        text["session_id"] = BEARER  # behind the object already recorded once
        return shared

    first, again, second, listed = _recorded(
        tmp_path / "s", [lambda: shared, lambda: shared, changed]
    )
    assert first == again == ({"transport": "http", "session_id": "s1", "server": "weather"}, None)
    context, redacted = second
    assert context["session_id"] != BEARER and redacted == ["context.session_id"]
    assert listed == second
    assert BEARER.encode() not in _store_bytes(tmp_path / "s")


def test_a_kept_redaction_is_given_again(tmp_path: Path) -> None:
    shared = MappingProxyType({"transport": "http", "session_id": BEARER, "server": "w"})
    records = _recorded(tmp_path / "s", [lambda: shared] * 3)
    assert records[0][1] == ["context.session_id"]
    assert records[1:] == [records[0]] * 3  # the two decisions after it, and the listing
    assert BEARER.encode() not in _store_bytes(tmp_path / "s")


def test_a_value_equal_to_another_type_is_not_taken_for_it(tmp_path: Path) -> None:
    # True == 1 == 1.0: a redacted context kept by value equality alone would be given
    # again, with the first one's value, for the others
    text: dict[str, Any] = {"flag": True, "session_id": BEARER}
    shared = MappingProxyType(text)

    def as_number(value: Any) -> Callable[[], Any]:
        def make() -> Any:
            text["flag"] = value
            return shared

        return make

    records = _recorded(tmp_path / "s", [as_number(True), as_number(1), as_number(1.0)])
    assert [json.dumps(context["flag"]) for context, _ in records[:3]] == ["true", "1", "1.0"]
    assert all(redacted == ["context.session_id"] for _, redacted in records)


def test_configured_context_paths_are_redacted_on_every_record(tmp_path: Path) -> None:
    shared = MappingProxyType({"transport": "http", "session_id": "s1", "server": "w"})
    records = _recorded(tmp_path / "s", [lambda: shared] * 2, redact_paths=["server"])
    for context, redacted in records:
        assert context["server"] != "w" and redacted == ["context.server"]
