"""A record holds the arguments and context as they were decided and redacted, not as the
objects they came in may be later: the writer encodes a record up to a flush interval
after `append`. A tool whose parameter is typed `Any` gets the request's own objects and
may change them in place (found here: a bearer token a tool wrote into its argument was
stored unredacted, in the record of a decision that never saw it); a caller of
`AuditLog.append` may change a context it passed."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from types import MappingProxyType
from typing import Any

from audit_kit import BEARER, event
from fastmcp import Client, FastMCP
from replay_helpers import rows

from guard import GuardMiddleware, Principal
from guard.audit import AuditLog, verify

POLICY = {"name": "p", "rules": [{"name": "r", "effect": "allow", "tools": {"names": ["keep"]}}]}


async def test_a_tool_changing_its_arguments_in_place_leaves_its_record_as_decided(
    tmp_path: Path,
) -> None:
    mcp = FastMCP("m")

    @mcp.tool
    def keep(payload: Any, items: Any, flat: Any, tags: Any) -> str:
        payload["note"] = BEARER  # the request's own objects: an `Any` is passed as sent
        payload["inner"]["seen"] = True
        items.append(BEARER)
        flat["token"] = BEARER  # (a mapping, and a list, holding plain values only)
        tags.append(BEARER)
        return "kept"

    # nothing encoded before the tool has run: only at close
    log = AuditLog(tmp_path / "a", flush_interval=3600, batch_size=10**6)
    guard = GuardMiddleware(POLICY, principal=Principal("u", ("x",)), audit=log, telemetry=False)
    mcp.add_middleware(guard)
    sent = {
        "payload": {"a": 1, "inner": {"b": [1, 2]}}, "items": ["x", {"y": 1}],
        "flat": {"c": 1}, "tags": ["t"],
    }  # fmt: skip
    async with Client(mcp) as client:
        assert (await client.call_tool("keep", sent)).data == "kept"
    guard.close()
    log.close()
    assert verify(tmp_path / "a").ok
    (record,) = [r for r in rows(tmp_path / "a") if r["method"] == "tools/call"]
    assert json.loads(record["args"]) == sent
    stored = b"".join(p.read_bytes() for p in (tmp_path / "a").rglob("*") if p.is_file())
    assert BEARER.encode() not in stored


def test_a_context_changed_after_append_leaves_the_record_as_appended(tmp_path: Path) -> None:
    log = AuditLog(tmp_path / "a", flush_interval=3600)
    text: dict[str, Any] = {"transport": "http", "session_id": "s1", "server": "w"}
    odd: dict[str, Any] = {"transport": "http", "n": 1, "nested": {"k": "v"}}  # not kept
    ids = []
    for context in (MappingProxyType(text), odd):
        ev = event(len(ids))
        ev = dataclasses.replace(ev, request=dataclasses.replace(ev.request, context=context))
        assert log.append(ev)
        ids.append(ev.decision_id)
    text["session_id"] = BEARER  # before the writer encodes either record
    odd["n"] = 2
    odd["nested"]["k"] = BEARER
    log.close()
    got = {r["decision_id"]: json.loads(r["context"]) for r in rows(tmp_path / "a")}
    assert got[ids[0]] == {"transport": "http", "session_id": "s1", "server": "w"}
    assert got[ids[1]] == {"transport": "http", "n": 1, "nested": {"k": "v"}}


def test_arguments_changed_after_append_leave_the_record_as_appended(tmp_path: Path) -> None:
    # what a tool given the request's own objects does, done here to the event's arguments
    args: dict[str, Any] = {
        "flat": {"c": 1}, "tags": ["t"], "deep": {"list": [{"k": "v"}], "map": {"x": [1]}},
        "plain": "text",
    }  # fmt: skip
    sent = json.loads(json.dumps(args))
    log = AuditLog(tmp_path / "a", flush_interval=3600, batch_size=10**6)
    ev = event(1)
    ev = dataclasses.replace(ev, request=dataclasses.replace(ev.request, args=args))
    assert log.append(ev)
    args["flat"]["token"] = BEARER
    args["tags"].append(BEARER)
    args["deep"]["list"][0]["k"] = BEARER
    args["deep"]["map"]["x"].append(BEARER)
    args["plain"] = BEARER
    log.close()
    (record,) = rows(tmp_path / "a")
    assert json.loads(record["args"]) == sent
