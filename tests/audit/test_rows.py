"""The writer's fast row encoding: byte for byte the canonical JSON of the plain values, for
any input a caller or a hostile client can put in a record, and stored exactly as hashed."""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from types import MappingProxyType
from typing import Any

from audit_kit import event
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from guard.audit import AuditLog, open_store, verify
from guard.audit.redact import Redactor
from guard.audit.rows import (
    DECISION,
    LISTING,
    OUTCOME,
    RowBuilder,
    outcome_body,
    set_items,
    set_reference,
    to_us,
)
from guard.audit.schema import (
    DECISION_COLUMNS,
    GENESIS,
    ITEMSET_MID,
    ITEMSET_PREFIX,
    LISTING_ITEM_COLUMNS,
    canonical,
    chain_hash,
    itemset_line,
    row_body,
)
from guard.policy.model import Decision, Principal, Resource

# text a client controls: quotes, backslashes, control characters, non-ASCII, lone surrogates
hostile = st.text(
    alphabet=st.sampled_from(['"', "\\", "\n", "\t", "\x00", "\x1f", "é", "😀", "\ud800", "a"]),
    max_size=12,
)
maybe = st.none() | hostile
# keys: hostile text, or names redaction always takes (claims, meta and context have them)
keys = hostile | st.sampled_from(["token", "password", "api_key"])
json_value = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | hostile
    | st.floats(allow_nan=False, allow_infinity=False),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(hostile, inner, max_size=3)
    | st.dictionaries(hostile, inner, max_size=3).map(MappingProxyType),  # read-only mappings
    max_leaves=8,
)  # fmt: skip


def _text(value: Any) -> str | None:
    return value if value is None or isinstance(value, str) else str(value)


def _number(value: Any) -> float | None:
    return float(value) if math.isfinite(float(value)) else None


def _dumps(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      default=lambda v: dict(v) if isinstance(v, Mapping) else repr(v))  # fmt: skip


def redacted_inputs(rows: RowBuilder, p: Principal, r: Resource, inputs: Any) -> list[str] | None:
    """The reference `inputs_redacted`: the resource fields and context paths `append`
    redacted, and the paths redaction takes from the resource's meta and the claims kept,
    in column order; None (left out) when there are none."""
    uri, context = inputs or ((), ())
    claims = dict(p.claims)
    if rows.claims is not None:
        claims = {k: v for k, v in claims.items() if k in rows.claims}
    paths = [
        *uri,
        *(f"resource_meta.{x}" for x in rows.redactor.redact(r.meta)[1]),
        *(f"claims.{x}" for x in rows.redactor.redact(claims)[1]),
        *context,
    ]
    return paths or None


def plain_values(rows: RowBuilder, item: tuple[Any, ...]) -> list[Any]:
    """The reference: a queued decision as plain values, schema order, no chain columns."""
    (_, did, ts, p, r, action, t, context, args, redacted, d, sh, server,
     transport, session_id, request_id, method, trace_id, span_id, inputs) = item  # fmt: skip
    args_json = _dumps(args) if args else "{}"
    digest = hashlib.sha256(args_json.encode(errors="surrogatepass")).hexdigest()
    return [
        _text(did), ts, ts if t is None else to_us(t), _text(trace_id or None),
        _text(span_id or None), _text(server), _text(transport), _text(session_id),
        _text(request_id), _text(method), _text(action),
        *rows._resource_redacted(r)[0], *rows.principal(p),
        _dumps(context) if context else None, args_json, list(redacted), digest,
        d.allowed, d.reason, d.rule, d.policy, d.policy_hash or None, list(d.matched_rules),
        list(d.errors), d.rules_evaluated, _number(d.eval_us),
        *((None,) * 5 if sh is None else
          (sh.allowed, sh.reason, sh.rule, sh.policy, sh.policy_hash or None)),
        redacted_inputs(rows, p, r, inputs),
    ]  # fmt: skip


# what `append` found redacted outside the arguments: None, or (resource fields, context paths)
context_paths = st.lists(hostile.map(lambda x: f"context.{x}"), max_size=2).map(tuple)
inputs = st.none() | st.tuples(
    st.sampled_from([(), ("resource_uri",), ("resource", "resource_uri")]), context_paths
)


@st.composite
def queued(draw: st.DrawFn) -> tuple[Any, ...]:
    principal = Principal(
        draw(maybe), tuple(draw(st.lists(hostile, max_size=3))), agent_id=draw(maybe),
        auth_method=draw(st.sampled_from(["api_key", "jwt", "none"])),
        authenticated=draw(st.booleans()), key_id=draw(maybe),
        claims=draw(st.dictionaries(keys, json_value, max_size=3)),
    )  # fmt: skip
    resource = Resource(
        draw(st.sampled_from(["tool", "resource", "prompt"])), draw(hostile),
        tags=frozenset(draw(st.lists(hostile, max_size=3))), namespace=draw(maybe),
        version=draw(maybe), uri=draw(maybe), template=draw(maybe),
        meta=draw(st.dictionaries(keys, json_value, max_size=2)),
    )  # fmt: skip
    decision = Decision(
        draw(st.booleans()), draw(hostile), rule=draw(maybe), policy=draw(maybe),
        matched_rules=tuple(draw(st.lists(hostile, max_size=2))),
        errors=tuple(draw(st.lists(hostile, max_size=2))), policy_hash=draw(maybe) or "",
        rules_evaluated=draw(st.integers(0, 10**6)),
        eval_us=draw(st.floats(allow_nan=True, allow_infinity=True)),
    )  # fmt: skip
    shadow = draw(st.none() | st.builds(Decision, st.booleans(), hostile, rule=maybe))
    args = draw(st.dictionaries(hostile, json_value, max_size=4))
    # the middleware's context is a read-only mapping
    contexts = st.dictionaries(hostile, json_value, max_size=2)
    contexts = contexts | contexts.map(MappingProxyType)
    when = draw(
        st.none() | st.datetimes(timezones=st.sampled_from([UTC, timezone(timedelta(hours=-7))]))
    )
    return (
        DECISION, draw(hostile), draw(st.integers(0, 2**53)), principal, resource,
        draw(st.sampled_from(["call", "list", "read"])), when, draw(contexts), args,
        tuple(draw(st.lists(hostile, max_size=2))), decision, shadow, draw(maybe), draw(maybe),
        draw(maybe), draw(st.none() | st.integers() | hostile), draw(maybe), draw(maybe),
        draw(maybe), draw(inputs),
    )  # fmt: skip


def listing_of(items: list[tuple[Any, ...]], *, numbered: bool = True) -> tuple[Any, ...]:
    """A queued listing made of queued decisions: the first one's request, every one's
    component and answer. `numbered`: item ids are the listing's id and the position, as
    the middleware makes them; else each decision's own id."""
    (_, did, ts, p, _, action, t, context, _, _, _, _, server, transport, session_id,
     request_id, method, trace_id, span_id, inputs) = items[0]  # fmt: skip
    entries = [
        (f"{did}.{n}" if numbered else i[1], i[4], i[10], i[11]) for n, i in enumerate(items, 1)
    ]
    in_context = inputs[1] if inputs else ()  # a listing's resources are the server's own
    return (LISTING, did, ts, p, action, t, context, in_context, server, transport,
            session_id, request_id, method, trace_id, span_id, entries)  # fmt: skip


def plain_listing_values(rows: RowBuilder, listing: tuple[Any, ...]) -> list[Any]:
    """The reference for a listing: the shared columns as a decision has them, then one
    object per component with the item fields in schema order."""
    (_, lid, ts, p, action, t, context, in_context, server, transport, session_id,
     request_id, method, trace_id, span_id, entries) = listing  # fmt: skip
    names = [name for name, _ in LISTING_ITEM_COLUMNS]
    items = []
    for n, (did, r, d, sh) in enumerate(entries, 1):
        decision = plain_values(
            rows, (DECISION, did, ts, p, r, action, t, context, {}, (), d, sh, server,
                   transport, session_id, request_id, method, trace_id, span_id,
                   ((), in_context)),
        )  # fmt: skip
        by_name = dict(zip([n for n, _ in DECISION_COLUMNS], decision, strict=False))
        if did == f"{lid}.{n}":  # the listing's id and the position: derived when read
            by_name["decision_id"] = None
        items.append({name: by_name[name] for name in names})
    return [
        _text(lid), ts, ts if t is None else to_us(t), _text(trace_id or None),
        _text(span_id or None), _text(server), _text(transport), _text(session_id),
        _text(request_id), _text(method), _text(action), *rows.principal(p),
        _dumps(context) if context else None, items, None, None,
    ]  # fmt: skip


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(items=st.lists(queued(), min_size=1, max_size=4), numbered=st.booleans())
def test_listing_body_is_the_canonical_json_of_the_values(
    items: list[tuple[Any, ...]], numbered: bool
) -> None:
    rows = RowBuilder(Redactor(), None)
    listing = listing_of(items, numbered=numbered)
    body = rows.listing_body(listing)
    assert body == row_body("listings", plain_listing_values(rows, listing))
    # an item leaves out its NULL fields: DuckDB reads them back as NULL
    stored = json.loads(body + "}")["items"]
    assert len(stored) == len(items)
    assert all(None not in item.values() for item in stored)
    assert all("allowed" in item for item in stored)
    # and its id when that is the listing's id and its position
    lid = listing[1]
    kept = [did is not None and did != f"{lid}.{n}" for n, (did, *_) in enumerate(listing[-1], 1)]
    assert ["decision_id" in item for item in stored] == kept


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(items=st.lists(queued(), min_size=1, max_size=4), numbered=st.booleans())
def test_listing_naming_its_item_set_is_the_canonical_json_of_the_values(
    items: list[tuple[Any, ...]], numbered: bool
) -> None:
    """The form a writer stores once the set is filed: the row names the set and holds the
    items' times; the set holds the inline items without them, and hashes to its name."""
    rows = RowBuilder(Redactor(), None)
    listing = listing_of(items, numbered=numbered)
    head, parts, evals, digest = rows.listing_parts(listing)
    assert itemset_line(set_items(parts))[0] == digest
    line = itemset_line(set_items(parts))[1]
    values = plain_listing_values(rows, listing)
    inline = values[-3]
    values[-3:] = [None, digest, [item.pop("eval_us") for item in inline]]
    assert f"{head},{set_reference(digest, evals)}" == row_body("listings", values)
    filed = json.loads(line)
    filed_items = line[len(ITEMSET_PREFIX) + len(digest) + len(ITEMSET_MID) : -2]
    assert filed["items_sha256"] == digest == hashlib.sha256(filed_items).hexdigest()
    expected = [{k: v for k, v in i.items() if v is not None} for i in inline]
    # filed as rows are stored: a lone surrogate as "?"
    assert filed["items"] == json.loads(
        json.dumps(expected, ensure_ascii=False).encode("utf-8", "replace")
    )


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(item=queued())
def test_fast_body_is_the_canonical_json_of_the_values(item: tuple[Any, ...]) -> None:
    rows = RowBuilder(Redactor(), None)
    assert rows.body(item) == row_body("decisions", plain_values(rows, item))
    # and a batch cache shared with another row changes nothing
    cache: dict[Any, Any] = {}
    rows.body(item, cache)
    assert rows.body(item, cache) == row_body("decisions", plain_values(rows, item))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    items=st.lists(queued(), min_size=2, max_size=5),
    shared=st.lists(st.sampled_from([3, 4, 7]), max_size=5),
)
def test_rows_of_one_batch_are_each_the_canonical_json_of_their_values(
    items: list[tuple[Any, ...]], shared: list[int]
) -> None:
    """A batch encodes a principal, resource or context met again once (cached by object):
    rows sharing one with the first row, or not, each read as their own values."""
    batch = [list(item) for item in items]
    for n, field in enumerate(shared, 1):
        batch[n % len(batch)][field] = batch[0][field]  # the very object, as requests share
    rows = RowBuilder(Redactor(), None)
    cache: dict[Any, Any] = {}
    for item in map(tuple, batch):
        assert rows.body(item, cache) == row_body("decisions", plain_values(rows, item))


@given(
    did=hostile, ts=st.integers(0, 2**53), status=st.sampled_from(["ok", "error"]),
    duration=st.floats(), error=maybe,
)  # fmt: skip
def test_outcome_body_is_the_canonical_json_of_the_values(
    did: str, ts: int, status: str, duration: float, error: str | None
) -> None:
    item = (OUTCOME, did, ts, status, duration, error)
    assert outcome_body(item) == row_body("outcomes", [did, ts, status, _number(duration), error])
    if not math.isfinite(duration):
        assert '"duration_us":null' in outcome_body(item)  # NaN is not JSON


def test_canonical_form_is_plain_json_anyone_can_recompute() -> None:
    values = ["d1", 1, "ok", 2.5, None, "w1", 1, GENESIS]
    text = canonical("outcomes", values)
    assert json.loads(text) == {
        "decision_id": "d1", "ts": 1, "status": "ok", "duration_us": 2.5,
        "error_class": None, "writer_id": "w1", "seq": 1, "prev_hash": GENESIS,
    }  # fmt: skip
    assert chain_hash("outcomes", values) == hashlib.sha256(text).hexdigest()


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow,
          HealthCheck.function_scoped_fixture])  # fmt: skip
@given(items=st.lists(queued(), min_size=1, max_size=20))
def test_hostile_rows_are_stored_as_hashed_and_verify(
    tmp_path_factory: Any, items: list[tuple[Any, ...]]
) -> None:
    """Every row that reaches the store reads back with the hash it was written with,
    through DuckDB's JSON reader and Parquet: verify finds nothing wrong."""
    store = tmp_path_factory.mktemp("store")
    log = AuditLog(store, flush_interval=3600)
    for item in items:
        log._put(item)
    log.close()
    assert log.stats()["written_decisions"] == len(items)
    report = verify(store)
    assert report.ok, report.first
    assert report.rows == len(items)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow,
          HealthCheck.function_scoped_fixture])  # fmt: skip
@given(items=st.lists(queued(), min_size=1, max_size=6))
def test_hostile_listings_are_stored_as_hashed_and_read_as_one_record_each(
    tmp_path_factory: Any, items: list[tuple[Any, ...]]
) -> None:
    store = tmp_path_factory.mktemp("store")
    log = AuditLog(store, flush_interval=3600)
    listing = listing_of(items)
    log._put(listing)
    log.close()
    report = verify(store)
    assert report.ok, report.first
    assert report.rows == 1  # one physical row ...
    with open_store(store) as con:
        got = con.execute(
            "SELECT decision_id, resource, allowed, args, args_redacted FROM decisions "
            "ORDER BY decision_id"
        ).fetchall()
    # ... read back as one record per component, each with its own answer, no arguments
    want = sorted(
        (did, _text(r.name).encode("utf-8", "replace").decode(), bool(d.allowed), "{}", [])
        for did, r, d, _ in listing[-1]
    )
    assert sorted(
        (did.encode("utf-8", "replace").decode(), name, a, args, red)
        for did, name, a, args, red in got
    ) == [(d.encode("utf-8", "replace").decode(), *rest) for d, *rest in want]


def test_records_read_back_as_their_values(tmp_path: Path) -> None:
    when = datetime(2026, 3, 4, 5, 6, 7, 890123, tzinfo=UTC)
    log = AuditLog(tmp_path / "s")
    log.append(event(7, when=when, args={"q": 'say "hi"\n', "n": 1.5}))
    log.close()
    with open_store(tmp_path / "s") as con:
        got = con.execute(
            "SELECT request_time, args, eval_us, resource_tags, rules_evaluated FROM decisions"
        ).fetchone()
    assert got == (when, '{"n":1.5,"q":"say \\"hi\\"\\n"}', 4.5, ["public", "read"], 3)


def test_answers_kept_for_repeat_listings_stay_small_whatever_the_callers_claims(
    tmp_path: Path,
) -> None:
    """Found in review: a listing's remembered answers kept their JSON for every kind of
    caller (the claim and context paths redacted from it), without bound, so callers each
    presenting claims of a new shape grew it for as long as the answers were reused."""
    from dataclasses import replace

    from audit_kit import ALICE, stored_items

    from guard.audit.rows import MAX_ENCODINGS

    store = tmp_path / "s"
    log = AuditLog(store, flush_interval=3600)
    first = [replace(event(i), decision_id=f"L0.{i + 1}") for i in range(3)]
    answers = log.listing_answers(first)
    assert answers is not None
    log.append_listing("L0", first)
    callers = 200
    for n in range(1, callers + 1):
        caller = replace(ALICE, claims={"team": "x", f"k{n}": {"token": f"secret-{n}"}})
        again = event(0, principal=caller)
        log.append_listing_again(f"L{n}", answers, 1.5, again)
        if n % 50 == 0:
            assert log.flush(10)
            assert len(answers.encoded) <= MAX_ENCODINGS
    log.close()
    assert len(answers.encoded) <= MAX_ENCODINGS
    with open_store(store) as con:
        cursor = con.execute("SELECT * FROM listings ORDER BY seq")
        names = [d[0] for d in cursor.description]
        rows = [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
    assert len(rows) == callers + 1
    last = json.dumps(stored_items(store, rows[-1]))  # encoded for its own caller
    assert f"claims.k{callers}.token" in last and "secret-" not in last
    assert verify(store).ok


_NAMING = RowBuilder(Redactor(), None)  # one writer's builder across the examples


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(items=st.lists(queued(), min_size=1, max_size=4), numbered=st.booleans())
def test_an_item_set_named_again_is_named_by_its_own_items(
    items: list[tuple[Any, ...]], numbered: bool
) -> None:
    """The writer keeps the names of the item sets it met (`RowBuilder._set_name`): a set
    met again, in the same batch or another, and every set it has not met, must still be
    named by the hash of its own items."""
    listing = listing_of(items, numbered=numbered)
    cache: dict[Any, Any] = {}
    for builder_cache in (cache, cache, {}):  # twice in one batch, then in the next
        _, parts, _, digest = _NAMING.listing_parts(listing, builder_cache)
        assert digest == itemset_line(set_items(parts))[0]
    # a different set of as many items is not named as this one
    other = [(*i[:4], replace(i[4], name=f"{i[4].name}~"), *i[5:]) for i in items]
    _, parts, _, digest = _NAMING.listing_parts(listing_of(other, numbered=numbered), cache)
    assert digest == itemset_line(set_items(parts))[0]
