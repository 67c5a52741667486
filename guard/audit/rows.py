"""Queued items become rows: the decision record's values in schema order.

`AuditLog.append` queues a tuple (`DECISION`, decision id, timestamp, principal, resource,
action, clock, context, redacted args, redacted paths, args digest, decision, shadow,
server, transport, session id, request id, method, trace id, span id); the writer thread
turns a batch of them into rows here, off the request path.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any, Final

from guard.audit.redact import Redactor
from guard.audit.schema import json_encoder

__all__ = ["DECISION", "OUTCOME", "RowBuilder", "to_us"]

DECISION: Final = 0
OUTCOME: Final = 1
_NO_SHADOW: Final = (None, None, None, None, None)
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_US: Final = datetime.resolution
_EMPTY_JSON_SHA: Final = hashlib.sha256(b"{}").hexdigest()
_dumps_sorted = json_encoder(sort_keys=True, default=repr)


def to_us(value: datetime) -> int:
    """Microseconds since the epoch; a naive value is taken as UTC (the guard's clocks are)."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return (value - _EPOCH) // _ONE_US


class RowBuilder:
    """Builds `decisions` rows; claims are narrowed to `claims` (if given) and redacted.

    ```python
    rows = RowBuilder(Redactor(), None)
    values = rows.decision(queued_item)
    ```
    """

    __slots__ = ("claims", "redactor")

    def __init__(self, redactor: Redactor, claims: Iterable[str] | None) -> None:
        self.redactor = redactor
        self.claims = None if claims is None else frozenset(claims)

    def decision(
        self, item: tuple[Any, ...], cache: dict[int, tuple[Any, list[Any]]] | None = None
    ) -> list[Any]:
        """The row (schema order, without chain columns) for a queued decision. Principals
        and resources repeat across a batch, so their columns are built once per object."""
        (_, did, ts, p, r, action, t, context, args, redacted, digest, d, sh, server,
         transport, session_id, request_id, method, trace_id, span_id) = item  # fmt: skip
        if args:
            args_json = _dumps_sorted(args)
            if digest is None:
                digest = hashlib.sha256(args_json.encode()).hexdigest()
        else:
            args_json, digest = "{}", _EMPTY_JSON_SHA
        if cache is None:
            cache = {}
        hit = cache.get(id(r))
        if hit is None or hit[0] is not r:
            meta = _dumps_sorted(self.redactor.redact(r.meta)[0]) if r.meta else None
            hit = (r, [r.kind, r.name, sorted(r.tags), r.namespace, r.version, r.uri,
                       r.template, meta])  # fmt: skip
            cache[id(r)] = hit
        resource_part = hit[1]
        hit = cache.get(id(p))
        if hit is None or hit[0] is not p:
            hit = (p, self.principal(p))
            cache[id(p)] = hit
        row = [
            did, ts, ts if t is None else to_us(t), trace_id or None, span_id or None,
            server, transport, session_id,
            None if request_id is None else str(request_id), method, action,
        ]  # fmt: skip
        row += resource_part
        row += hit[1]
        row += (
            _dumps_sorted(context) if context else None,
            args_json, list(redacted), digest,
            d.allowed, d.reason, d.rule, d.policy, d.policy_hash or None,
            list(d.matched_rules), list(d.errors), d.rules_evaluated, float(d.eval_us),
        )  # fmt: skip
        if sh is None:
            row += _NO_SHADOW
        else:
            row += (sh.allowed, sh.reason, sh.rule, sh.policy, sh.policy_hash or None)
        return row

    def principal(self, p: Any) -> list[Any]:
        claims = p.claims
        if claims:
            if self.claims is not None:
                claims = {k: v for k, v in claims.items() if k in self.claims}
            claims = self.redactor.redact(claims)[0]
        return [
            p.user_id, p.agent_id, list(p.roles), p.auth_method, p.authenticated, p.key_id,
            _dumps_sorted(claims) if claims else None,
        ]  # fmt: skip
