"""Rebuild a recorded decision the way the README says replay does, and re-decide it."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

from test_replayable import _replayed

from guard import AccessRequest, load_policies
from guard.audit import open_store
from guard.audit.redact import path_keys
from guard.policy.conditions import UNKNOWN


def _mark_unknown(args: Any, path: str) -> Any:
    """Replace the value at dotted `path` by UNKNOWN (redacted: replay treats it as unknown)."""
    keys = path_keys(path)
    node = args
    for key in keys[:-1]:
        node = node[int(key)] if isinstance(node, list) else node[key]
    last = keys[-1]
    if isinstance(node, list):
        node[int(last)] = UNKNOWN
    else:
        assert last in node, (path, args)
        node[last] = UNKNOWN
    return args


def replayed(row: dict[str, Any]) -> AccessRequest:
    """The request a record describes (`test_replayable`), each redacted argument, claim,
    meta and context value unknown (`args_redacted`, `inputs_redacted`)."""
    args = json.loads(row["args"])
    for path in row["args_redacted"] or ():
        args = _mark_unknown(args, path)
    request = _replayed(row)
    claims, meta = dict(request.principal.claims), dict(request.resource.meta)
    context = dict(request.context or {})
    documents = {"claims": claims, "resource_meta": meta, "context": context}
    for entry in row["inputs_redacted"] or ():
        column, _, path = entry.partition(".")
        if column in documents:
            _mark_unknown(documents[column], path)
    return dataclasses.replace(
        request,
        principal=dataclasses.replace(request.principal, claims=claims),
        resource=dataclasses.replace(request.resource, meta=meta),
        args=args,
        context=context if request.context is not None else None,
    )


def rows(store: Path, where: str = "true") -> list[dict[str, Any]]:
    with open_store(store) as db:
        cur = db.execute(f"SELECT * FROM decisions WHERE {where} ORDER BY ts, decision_id")
        names = [c[0] for c in cur.description]
        return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]


def redecide(store: Path, row: dict[str, Any], prefix: str = "") -> Any:
    with open_store(store) as db:
        texts = db.policy_texts(row[f"{prefix}policy_hash"])
    return load_policies(texts).decide(replayed(row))


def recorded(row: dict[str, Any], prefix: str = "") -> tuple[Any, ...]:
    return tuple(row[f"{prefix}{c}"] for c in ("allowed", "reason", "rule", "policy_hash"))


def again(decision: Any) -> tuple[Any, ...]:
    return (decision.allowed, decision.reason, decision.rule, decision.policy_hash)
