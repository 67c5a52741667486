"""A mapping key shaped like a credential: redaction judged each key by its name and each
value by its shape, but never a key by its shape, so `{"sk-live-...": 1}` (a caller
keying a map by API key, a JWT as a claim's name) was recorded as sent, in `args` and in
the listed paths. Such a key is recorded as a marker that keeps keys apart, its value as
the secret marker, and the marker's path is listed, so replay treats it as unknown."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest
from audit_kit import ALICE, WEATHER, event, scan_for
from fastmcp import Client, FastMCP

from guard import GuardMiddleware, Principal
from guard.audit import AuditLog, open_store
from guard.audit.redact import SECRET_MARK, Redactor, _Paths

KEY = "sk-live-7f3a9c2e4b1d8f6a0c5e"
JWT = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJib2IifQ.c2lnbmF0dXJlLWtleQ"


def test_a_credential_shaped_key_becomes_a_distinct_marker() -> None:
    clean, redacted = Redactor().redact(
        {"city": "Paris", KEY: 1, "nested": {JWT: {"a": 1}, "b": 2}, "<redacted:key 2>": 3}
    )
    assert KEY not in json.dumps(clean) and JWT not in json.dumps(clean)
    assert KEY not in str(redacted) and JWT not in str(redacted)
    assert clean == {
        "city": "Paris",
        "<redacted:key 1>": SECRET_MARK,
        "nested": {"<redacted:key 1>": SECRET_MARK, "b": 2},
        "<redacted:key 2>": 3,  # the caller's own key, kept apart from the markers
    }
    assert redacted == ("<redacted:key 1>", "nested.<redacted:key 1>")


def test_a_key_spelled_like_a_marker_is_not_overwritten() -> None:
    clean, redacted = Redactor().redact({"<redacted:key 1>": 1, KEY: 2, JWT: 3})
    assert clean == {"<redacted:key 1>": 1, "<redacted:key 2>": SECRET_MARK,
                     "<redacted:key 3>": SECRET_MARK}  # fmt: skip
    assert redacted == ("<redacted:key 2>", "<redacted:key 3>")


def test_keys_that_are_not_text_are_not_recorded_twice() -> None:
    clean, _ = Redactor().redact({"password": "x", 1: "y"})
    assert clean == {"password": "<redacted:path>", "1": "y"}


def test_two_credential_keys_stay_two_keys() -> None:
    other = "sk-live-0000000000000000aaaa"
    clean, redacted = Redactor().redact({KEY: 1, other: 2})
    assert clean is not None and len(clean) == 2 and len(redacted) == 2
    assert set(clean.values()) == {SECRET_MARK}


def test_keys_are_kept_when_credential_shapes_are_not_detected() -> None:
    args = {KEY: 1}
    assert Redactor(detect_secrets=False).redact(args) == (args, ())


def test_a_key_past_the_path_budget_is_a_marker_too(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_Paths, "room", 10)
    clean, redacted = Redactor().redact({KEY: "x" * 50, "city": "a_long_city_name"})
    assert KEY not in json.dumps(clean) and KEY not in str(redacted)
    assert clean is not None and len(clean) == 2 and len(redacted) == 2


def test_claim_meta_and_context_keys_never_reach_the_store(tmp_path: Path) -> None:
    log = AuditLog(tmp_path / "store", claims=["team"])
    keyed = dataclasses.replace(ALICE, claims={"team": "x", JWT: "y", "nested": {KEY: 1}})
    meta = dataclasses.replace(WEATHER, meta={KEY: "z"})
    log.append(event(1, principal=keyed, resource=meta))
    in_context = event(2)
    request = dataclasses.replace(in_context.request, context={"headers": {KEY: "v"}})
    log.append(dataclasses.replace(in_context, request=request))
    log.close()
    assert log.stats()["append_errors"] == 0
    assert scan_for(tmp_path / "store", [KEY.encode(), JWT.encode()]) == []
    with open_store(tmp_path / "store") as con:
        rows = con.sql("SELECT inputs_redacted, context FROM decisions ORDER BY request_id")
        text = str(con.sql("SELECT * FROM decisions").fetchall())
        [(claims_and_meta, _), (in_context_paths, context)] = rows.fetchall()
    assert KEY not in text and JWT not in text
    # a claim the allow-list leaves out is listed by its marker too, not by its name
    assert sorted(claims_and_meta) == [
        "claims.<redacted:key 1>", "claims.nested", "resource_meta.<redacted:key 1>"
    ]  # fmt: skip
    assert in_context_paths == ["context.headers.<redacted:key 1>"]
    assert json.loads(context) == {"headers": {"<redacted:key 1>": SECRET_MARK}}


async def test_a_guarded_call_keyed_by_a_credential_leaves_no_trace_of_it(tmp_path: Path) -> None:
    app = FastMCP("keys")

    @app.tool
    def count(data: dict[str, int]) -> int:
        return len(data)

    policy = {"name": "p", "rules": [{"name": "r", "effect": "allow",
              "tools": {"patterns": ["*"]}, "actions": ["list", "call"]}]}  # fmt: skip
    guard = GuardMiddleware(policy, principal=Principal("alice"), audit=tmp_path / "store")
    app.add_middleware(guard)
    async with Client(app) as client:
        result = await client.call_tool("count", {"data": {KEY: 1, "plain": 2}})
        assert result.data == 2
        await client.call_tool("count", {"data": {}, JWT: 1}, raise_on_error=False)
    guard.close()
    store = tmp_path / "store"
    assert scan_for(store, [KEY.encode(), JWT.encode()]) == []
    with open_store(store) as con:
        rows = con.execute(
            "SELECT args, args_redacted FROM decisions WHERE method = 'tools/call' ORDER BY ts"
        ).fetchall()
        # segments are compressed: read every column back as text too
        text = str(con.sql("SELECT * FROM decisions").fetchall())
    assert KEY not in text and JWT not in text
    args: list[Any] = [json.loads(a) for a, _ in rows]
    assert args[0] == {"data": {"<redacted:key 1>": SECRET_MARK, "plain": 2}}
    assert rows[0][1] == ["data.<redacted:key 1>"]
    assert args[1] == {"data": {}, "<redacted:key 1>": SECRET_MARK}
    assert rows[1][1] == ["<redacted:key 1>"]
