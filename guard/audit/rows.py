"""Queued items become rows: the canonical JSON the chain hashes and DuckDB stores.

`AuditLog.append` queues a tuple (`DECISION`, decision id, timestamp, principal, resource,
action, clock, context, redacted args, redacted paths, decision, shadow,
server, transport, session id, request id, method, trace id, span id, inputs redacted:
None, or the resource fields and context paths `append` redacted); the writer thread
turns a batch of them into rows here, off the request path.

A row leaves here as its *body*: the canonical JSON object of its content columns without
the closing brace (`schema.row_body`). The writer appends the chain columns, hashes the
line and hands the same bytes to DuckDB, so no Python object per value ever crosses into
DuckDB. `RowBuilder.body` writes the JSON directly, from fragments cached per principal,
resource and decision outcome (they repeat across a batch). The tests hold a plain-values
reference it must match byte for byte (`tests/audit/test_rows.py`).
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from json.encoder import encode_basestring
from typing import Any, Final

from guard._settings import one_or_more
from guard.audit.redact import PATH_MARK, Redactor, _escaped
from guard.audit.schema import itemset_digest, json_encoder

__all__ = [
    "DECISION",
    "HEAVY",
    "LISTING",
    "MAX_ENCODINGS",
    "OUTCOME",
    "RowBuilder",
    "outcome_body",
    "to_us",
]

DECISION: Final = 0
OUTCOME: Final = 1
LISTING: Final = 2
# A queued decision holds its arguments until written: one whose arguments hold more than
# `QUEUE_CHARS` characters (`Redactor.measured`) counts toward the queue's bound once per
# `QUEUE_CHARS` of them, its count at index `HEAVY` of its item (absent: it counts once).
QUEUE_CHARS: Final = 1024
HEAVY: Final = 20
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_US: Final = datetime.resolution
_EMPTY_JSON_SHA: Final = hashlib.sha256(b"{}").hexdigest()
# what the writer adds to a body at most: `,"writer_id":…,"seq":…,"prev_hash":…,"hash":…}`
# and the newline (~180 bytes)
CHAIN_BYTES: Final = 256
# kinds of caller (paths redacted from claims and context) whose JSON a listing's answers
# keep: callers are few kinds, and a hostile one may invent a kind per request
MAX_ENCODINGS: Final = 8
_MAX_DIGESTS: Final = 64  # item sets whose names a writer keeps (`RowBuilder._set_name`)


def _plain(value: Any) -> Any:
    """What JSON holds for a value it cannot encode: a mapping as a dict (a request's
    context is a read-only `MappingProxyType`, and the redactor passes mappings through
    as they are), anything else as its `repr` (redaction already replaced the rest)."""
    if isinstance(value, Mapping):
        return dict(value)
    try:
        return repr(value)
    except Exception:  # a broken __repr__ must not lose the record
        return f"<{type(value).__name__}>"


_dumps_sorted = json_encoder(sort_keys=True, default=_plain)
_dumps = json_encoder(sort_keys=False)
_SHADOW_NULL: Final = (
    '"shadow_allowed":null,"shadow_reason":null,"shadow_rule":null,'
    '"shadow_policy":null,"shadow_policy_hash":null'
)


def to_us(value: datetime) -> int:
    """Microseconds since the epoch; a naive value is taken as UTC (the guard's clocks are)."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return (value - _EPOCH) // _ONE_US


def _text(value: Any) -> str | None:
    """A VARCHAR column's value: text as is, anything else as its `str`, None as NULL."""
    return value if value is None or type(value) is str else str(value)


def _q(value: Any) -> str:
    """JSON for a VARCHAR column's value."""
    if type(value) is str:
        return encode_basestring(value)
    return "null" if value is None else encode_basestring(str(value))


def _number(value: Any) -> float | None:
    """A DOUBLE column's value; NaN and infinities (not JSON) become NULL."""
    value = float(value)
    return value if math.isfinite(value) else None


def _fragment(pairs: Iterable[tuple[str, Any]], *, item: bool = False) -> str:
    """`"key":value` pairs; a listing `item` leaves out its NULL fields."""
    return ",".join(
        f"{encode_basestring(k)}:{_dumps(v)}" for k, v in pairs if not (item and v is None)
    )


class RowBuilder:
    """Builds `decisions` rows; claims are narrowed to `claims` (if given) and redacted.

    ```python
    rows = RowBuilder(Redactor(), None)
    body = rows.body(queued_item)  # what the writer chains and stores
    ```
    """

    __slots__ = ("_digests", "claims", "redactor")

    def __init__(self, redactor: Redactor, claims: str | Iterable[str] | None) -> None:
        self.redactor = redactor
        # one string is one claim name, not its letters
        self.claims = None if claims is None else frozenset(one_or_more("claims", claims))
        # item sets named lately: their items (JSON before and after `eval_us`) -> name
        self._digests: dict[tuple[tuple[str, str], ...], str] = {}

    def body(self, item: tuple[Any, ...], cache: dict[Any, Any] | None = None) -> str:
        """The row's body (see the module docstring) for a queued decision: what
        `schema.row_body("decisions", values)` gives for the row's plain values. `cache` is
        shared by the rows of one batch."""
        if len(item) > HEAVY:
            item = item[:HEAVY]
        (_, did, ts, p, r, action, t, context, args, redacted, d, sh, server,
         transport, session_id, request_id, method, trace_id, span_id, inputs) = item  # fmt: skip
        if cache is None:
            cache = {}
        where = _place(cache, server, transport, method, action)
        # what one caller's requests to one component share: one lookup per row (keyed by
        # the objects' ids, each checked to be the object it was made for)
        key = (id(r), id(p), id(context))
        shared = cache.get(key)
        if shared is None or shared[0] is not r or shared[1] is not p or shared[2] is not context:
            resource, meta_redacted = self._resource_json(cache, r)
            principal, claims_redacted = self._principal_json(cache, p)
            shared = cache[key] = (
                r, p, context, f"{resource},{principal},{_context_json(cache, context)}",
                meta_redacted, claims_redacted,
            )  # fmt: skip
        if args:
            args_json = _dumps_sorted(args)
            digest = hashlib.sha256(args_json.encode(errors="surrogatepass")).hexdigest()
            args_json = encode_basestring(args_json)
        else:
            args_json, digest = '"{}"', _EMPTY_JSON_SHA
        eval_us = _number(d.eval_us)
        body = (
            f"{_ids_json(did, ts, t, trace_id, span_id, where[0], session_id, request_id)},"
            f"{where[1]},{shared[3]},"
            f'"args":{args_json},"args_redacted":{_dumps(list(redacted)) if redacted else "[]"},'
            f'"args_sha256":"{digest}",{self._outcome_json(cache, d, item=False)},'
            f'"eval_us":{"null" if eval_us is None else repr(eval_us)},'
            f"{_SHADOW_NULL if sh is None else _shadow_json(sh)}"
        )
        meta_redacted, claims_redacted = shared[4], shared[5]
        if inputs or meta_redacted or claims_redacted:
            uri, in_context = inputs or ((), ())
            body += _inputs_json(uri, meta_redacted, claims_redacted, in_context)
        return body

    def within(self, body: str, item: tuple[Any, ...], cache: dict[Any, Any], limit: int) -> str:
        """`body`, the body of queued decision `item`, if its row fits in `limit` bytes (the
        readers' largest JSON object, `segments.MAX_ROW_BYTES`); else the body with each
        argument `<redacted:too-big>`, listed, as redaction records them past its path
        budget. Redaction caps each value, not their sum, and nothing bounds an in-process
        or stdio caller's: a row over the limit could not be read, nor its hot file
        converted. Raises `ValueError` (the record is counted as not encoded) if even that
        row is over the limit."""
        if _row_bytes(body) <= limit:
            return body
        cut = (*item[:8], *self.redactor.too_big(item[8] or {}), *item[10:])
        body = self.body(cut, cache)
        size = _row_bytes(body)
        if size > limit:
            raise ValueError(f"a decision row of {size} bytes, without its arguments, is over"
                             f" the readers' limit of {limit}")  # fmt: skip
        return body

    def listing_body(self, item: tuple[Any, ...], cache: dict[Any, Any] | None = None) -> str:
        """The body of a `listings` row for a queued listing, its items inline: `(LISTING,
        listing id, timestamp, principal, action, clock, context, context paths redacted,
        server, transport, session id, request id, method, trace id, span id, entries)`,
        each entry `(decision id, resource, decision, shadow)` (or a `Repeat`). What
        `schema.row_body("listings", values)` gives."""
        head, items, evals, _ = self.listing_parts(item, cache)
        return f"{head},{inline_items(items, evals)}"

    def listing_parts(
        self, item: tuple[Any, ...], cache: dict[Any, Any] | None = None
    ) -> tuple[str, list[tuple[str, str]], list[float | None], str]:
        """A queued listing's row in parts: its body up to its items (no comma after); per
        item the JSON of its fields before `eval_us` and after it (from a comma); each
        item's `eval_us`; and the SHA-256 of its item set. `inline_items` and
        `set_items` put them together."""
        (_, lid, ts, p, action, t, context, in_context, server, transport, session_id,
         request_id, method, trace_id, span_id, entries) = item  # fmt: skip
        if cache is None:
            cache = {}
        principal, claims_redacted = self._principal_json(cache, p)
        request = _request_json(cache, lid, ts, t, trace_id, span_id, server, transport,
                                session_id, request_id, method, action)  # fmt: skip
        head = f"{request},{principal},{_context_json(cache, context)}"
        if type(entries) is Repeat:
            # the answers of an earlier listing, encoded once per kind of caller
            answers = entries.answers
            key = (claims_redacted, in_context)
            encoded = answers.encoded.get(key)
            if encoded is None:
                items = self._items(cache, None, answers.entries, claims_redacted, in_context)
                encoded = (items, itemset_digest(set_items(items)))
                if len(answers.encoded) < MAX_ENCODINGS:  # else encoded each time: bounded
                    answers.encoded[key] = encoded
            evals = [_number(entries.eval_us)] * len(answers.entries)
            return head, encoded[0], evals, encoded[1]
        items = self._items(cache, f"{lid}.", entries, claims_redacted, in_context)
        evals = [_number(d.eval_us) for _, _, d, _ in entries]
        return head, items, evals, self._set_name(items)

    def _set_name(self, items: list[tuple[str, str]]) -> str:
        """The item set's name (`items_sha256`). Callers who list the same components get
        the same items, a set of ~20 KB for 100 tools, whose hash is kept for the next
        listing of it (`_MAX_DIGESTS` sets): looking it up by its items compares the
        strings, which within a batch are the very objects of the last listing (cached
        per component), and hashing them anew costs far less than SHA-256."""
        key = tuple(items)
        digest = self._digests.get(key)
        if digest is None:
            digest = itemset_digest(set_items(items))
            if len(self._digests) >= _MAX_DIGESTS:
                self._digests.clear()  # bounded: a set met again is hashed again
            self._digests[key] = digest
        return digest

    def _items(
        self,
        cache: dict[Any, Any],
        prefix: str | None,
        entries: Sequence[tuple[Any, ...]],
        claims_redacted: tuple[str, ...],
        in_context: tuple[str, ...],
    ) -> list[tuple[str, str]]:
        """Each entry's JSON before and after its `eval_us`. An item's id is its listing's
        id and its position (`L.1`, `L.2`, ...), as the middleware numbers them: left out,
        and derived by the `decisions` view, unless the caller numbered them otherwise (a
        fifth of a tool listing's bytes); an id of None is always derived."""
        resource_json, outcome_json = self._resource_json, self._outcome_json
        items: list[tuple[str, str]] = []
        add = items.append
        for n, (did, r, d, sh) in enumerate(entries, 1):
            # one lookup for what a component's answer shares with its last listing: its
            # resource (this very object) and the outcome's columns
            key = ("answer", id(r), _outcome_key(d, True))
            hit = cache.get(key)
            if hit is None or hit[0] is not r:
                resource, meta_redacted = resource_json(cache, r, item=True)
                before = outcome_json(cache, d)
                if resource:  # always, but for a hostile resource
                    before = f"{resource},{before}"
                hit = cache[key] = (r, before, meta_redacted)
            before, meta_redacted = hit[1], hit[2]
            if did is not None and did != f"{prefix}{n}":
                before = f'"decision_id":{_q(did)},{before}'
            if sh is None and not (in_context or meta_redacted or claims_redacted):
                add((before, ""))
                continue
            after = (
                ""
                if sh is None
                else f",{_fragment(zip(_SHADOW_COLUMNS, _shadow(sh), strict=True), item=True)}"
            )
            if in_context or meta_redacted or claims_redacted:
                after += _inputs_json((), meta_redacted, claims_redacted, in_context)
            add((before, after))
        return items

    # Fragments repeat across a batch (one principal makes many requests, a listing names
    # the same components each time): each is encoded once per batch, in `cache`.

    def _resource_json(
        self, cache: dict[Any, Any], r: Any, *, item: bool = False
    ) -> tuple[str, tuple[str, ...]]:
        """The resource columns' JSON, and the paths redacted from its meta."""
        key = ("item", id(r)) if item else id(r)
        hit = cache.get(key)
        if hit is None or hit[0] is not r:  # keyed by id: check it is the same object
            values, redacted = self._resource_redacted(r)
            pairs = zip(_RESOURCE_COLUMNS, values, strict=True)
            hit = cache[key] = (r, _fragment(pairs, item=item), redacted)
        return str(hit[1]), hit[2]

    def _principal_json(self, cache: dict[Any, Any], p: Any) -> tuple[str, tuple[str, ...]]:
        """The principal columns' JSON, and the paths redacted from its claims."""
        hit = cache.get(id(p))
        if hit is None or hit[0] is not p:
            values, redacted = self._principal_redacted(p)
            hit = (p, _fragment(zip(_PRINCIPAL_COLUMNS, values, strict=True)), redacted)
            cache[id(p)] = hit
        return str(hit[1]), hit[2]

    @staticmethod
    def _outcome_json(cache: dict[Any, Any], d: Any, *, item: bool = True) -> str:
        """The decision columns from `allowed` to `rules_evaluated` (of a listing `item`:
        without its NULL fields)."""
        key = _outcome_key(d, item)
        outcome: str | None = cache.get(key)
        if outcome is None:
            pairs = zip(_OUTCOME_COLUMNS, _outcome(d), strict=True)
            outcome = cache[key] = _fragment(pairs, item=item)
        return outcome

    def _resource_redacted(self, r: Any) -> tuple[list[Any], tuple[str, ...]]:
        meta, redacted = self.redactor.redact(r.meta) if r.meta else (None, ())
        values = [
            _text(r.kind), _text(r.name), sorted(map(str, r.tags)), _text(r.namespace),
            _text(r.version), _text(r.uri), _text(r.template),
            _dumps_sorted(meta) if meta else None,
        ]  # fmt: skip
        return values, tuple(f"resource_meta.{path}" for path in redacted)

    def principal(self, p: Any) -> list[Any]:
        """The principal columns' values (claims narrowed and redacted)."""
        return self._principal_redacted(p)[0]

    def _principal_redacted(self, p: Any) -> tuple[list[Any], tuple[str, ...]]:
        claims = p.claims
        redacted: tuple[str, ...] = ()
        if claims:
            left_out: list[str] = []
            if self.claims is not None:
                kept = self.claims
                left_out = [str(k) for k in claims if k not in kept]
                claims = {k: v for k, v in claims.items() if k in kept}
            claims, redacted = self.redactor.redact(claims)
            if left_out:
                # A claim the decision saw but the record may not keep is a marker, listed:
                # replay treats it as unknown, not as absent (`exists` would differ).
                claims = dict(claims or {})
                left_out = [k for k in left_out if k not in claims]
                left_out = self.redactor.recorded_keys(left_out, claims)  # no credential
                claims.update(dict.fromkeys(left_out, PATH_MARK))
                redacted += tuple(map(_escaped, left_out))
        values = [
            _text(p.user_id), _text(p.agent_id), [str(x) for x in p.roles], _text(p.auth_method),
            bool(p.authenticated), _text(p.key_id), _dumps_sorted(claims) if claims else None,
        ]  # fmt: skip
        return values, tuple(f"claims.{path}" for path in redacted)


def _row_bytes(body: str) -> int:
    """The most bytes the row of `body` can take once chained (lone surrogates counted as
    UTF-8 would write them)."""
    return len(body.encode(errors="surrogatepass")) + CHAIN_BYTES


def _request_json(
    cache: dict[Any, Any],
    did: Any,
    ts: int,
    t: Any,
    trace_id: Any,
    span_id: Any,
    server: Any,
    transport: Any,
    session_id: Any,
    request_id: Any,
    method: Any,
    action: Any,
) -> str:
    """The columns from `decision_id` to `action` of a listing."""
    where = _place(cache, server, transport, method, action)
    return (
        f"{_ids_json(did, ts, t, trace_id, span_id, where[0], session_id, request_id)},{where[1]}"
    )


def _place(
    cache: dict[Any, Any], server: Any, transport: Any, method: Any, action: Any
) -> tuple[str, str]:
    """The `server` and `transport` columns, and the `method` and `action` ones: the same
    for every request from one place (encoded once per batch)."""
    place = (server, transport, method, action)
    where: tuple[str, str] | None = cache.get(place)
    if where is None:
        where = cache[place] = (
            f'"server":{_q(server)},"transport":{_q(transport)}',
            f'"method":{_q(method)},"action":{_q(action)}',
        )
    return where


def _ids_json(
    did: Any, ts: int, t: Any, trace_id: Any, span_id: Any, where: str, session_id: Any,
    request_id: Any,
) -> str:  # fmt: skip
    """A row's columns from `decision_id` to `request_id` (`where`: server and transport)."""
    return (
        f'{{"decision_id":{_q(did)},"ts":{int(ts)},'
        f'"request_time":{int(ts) if t is None else to_us(t)},'
        f'"trace_id":{_q(trace_id or None)},"span_id":{_q(span_id or None)},{where},'
        f'"session_id":{_q(session_id)},"request_id":{_q(request_id)}'
    )  # fmt: skip


def _outcome_key(d: Any, item: bool) -> tuple[Any, ...]:
    """What a decision's outcome columns are made of (and a listing `item`'s, which leave
    out their NULL fields): their JSON is kept per batch under it."""
    return (d.allowed, d.reason, d.rule, d.policy, d.policy_hash, d.matched_rules, d.errors,
            d.rules_evaluated, item)  # fmt: skip


class Answers:
    """The answers of one listing, for the listings that repeat them (the same caller
    listing the same components, each answered from the policy memo): its entries
    `(None, resource, decision, None)` (ids derived from the position), and their JSON as
    the writer made it, per kind of caller (the paths redacted from claims and context),
    for the first `MAX_ENCODINGS` kinds met (the writer thread alone writes it)."""

    __slots__ = ("encoded", "entries")

    def __init__(self, entries: Sequence[tuple[Any, ...]]) -> None:
        self.entries = tuple(entries)
        self.encoded: dict[Any, tuple[list[tuple[str, str]], str]] = {}


class Repeat:
    """A queued listing's entries when they are `answers` again, each decided in
    `eval_us` (looking it up)."""

    __slots__ = ("answers", "eval_us")

    def __init__(self, answers: Answers, eval_us: float) -> None:
        self.answers = answers
        self.eval_us = eval_us

    def __len__(self) -> int:
        return len(self.answers.entries)


def inline_items(items: list[tuple[str, str]], evals: list[float | None]) -> str:
    """A listing's `items` field holding its items (`RowBuilder.listing_parts`)."""
    return (
        '"items":['
        + ",".join(
            f"{{{before}{after}}}" if ev is None else f'{{{before},"eval_us":{ev!r}{after}}}'
            for (before, after), ev in zip(items, evals, strict=True)
        )
        + "]"
    )


def set_items(items: list[tuple[str, str]]) -> str:
    """The items of a listing as its item set files them: without their `eval_us`."""
    return "[" + ",".join(f"{{{before}{after}}}" for before, after in items) + "]"


def set_reference(digest: str, evals: list[float | None]) -> str:
    """A listing's fields from `items` to `items_eval_us` when its item set is filed."""
    return f'"items":null,"items_sha256":"{digest}","items_eval_us":{_dumps(evals)}'


def _inputs_json(
    uri: tuple[str, ...], meta: tuple[str, ...], claims: tuple[str, ...], context: tuple[str, ...]
) -> str:
    """The `inputs_redacted` field (after the answer), in column order: the resource's
    name and URI, its meta, the claims, the context; none when all are empty (NULL)."""
    paths = [*uri, *meta, *claims, *context]
    return f',"inputs_redacted":{_dumps(paths)}' if paths else ""


def _context_json(cache: dict[Any, Any], context: Any) -> str:
    """The `context` field; one object (requests from one place share theirs, see
    `guard._request`) is encoded once per batch."""
    if not context:
        return '"context":null'
    key = ("context", id(context))
    hit = cache.get(key)
    if hit is None or hit[0] is not context:
        hit = cache[key] = (context, f'"context":{_q(_dumps_sorted(context))}')
    return str(hit[1])


def _outcome(d: Any) -> list[Any]:
    return [
        bool(d.allowed), _text(d.reason), _text(d.rule), _text(d.policy),
        _text(d.policy_hash or None), [str(x) for x in d.matched_rules],
        [str(x) for x in d.errors], int(d.rules_evaluated),
    ]  # fmt: skip


def _shadow_json(sh: Any) -> str:
    """A decision row's shadow columns, of a shadow decision."""
    return _fragment(zip(_SHADOW_COLUMNS, _shadow(sh), strict=True))


def _shadow(sh: Any) -> list[Any]:
    return [bool(sh.allowed), _text(sh.reason), _text(sh.rule), _text(sh.policy),
            _text(sh.policy_hash or None)]  # fmt: skip


def outcome_body(item: tuple[Any, ...]) -> str:
    """The body of a queued outcome `(OUTCOME, decision id, ts, status, duration_us,
    error class)`."""
    _, did, ts, status, duration_us, error_class = item
    duration = _number(duration_us)
    return (
        f'{{"decision_id":{_q(did)},"ts":{int(ts)},"status":{_q(status)},'
        f'"duration_us":{"null" if duration is None else repr(duration)},'
        f'"error_class":{_q(error_class)}'
    )


_RESOURCE_COLUMNS: Final = (
    "kind", "resource", "resource_tags", "resource_namespace", "resource_version",
    "resource_uri", "resource_template", "resource_meta",
)  # fmt: skip
_PRINCIPAL_COLUMNS: Final = (
    "user_id", "agent_id", "roles", "auth_method", "authenticated", "key_id", "claims",
)  # fmt: skip
_OUTCOME_COLUMNS: Final = (
    "allowed", "reason", "rule", "policy", "policy_hash", "matched_rules", "errors",
    "rules_evaluated",
)  # fmt: skip
_SHADOW_COLUMNS: Final = (
    "shadow_allowed", "shadow_reason", "shadow_rule", "shadow_policy", "shadow_policy_hash",
)  # fmt: skip
