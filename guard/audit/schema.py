"""The decision record: column names and types of `decisions` and `outcomes`, and the
canonical form each row's hash is computed over.

The order of `DECISION_COLUMNS` is the canonical order: changing it changes every hash, so
new columns are only ever appended (before the chain columns), listed in `ADDED_COLUMNS`,
and left out of the canonical form when NULL: a row written before a column existed reads
it as NULL and keeps its hash. Readers tolerate segments without them (`union_by_name`).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from typing import Any, Final

__all__ = [
    "ADDED_COLUMNS",
    "DECISION_COLUMNS",
    "GENESIS",
    "LISTING_COLUMNS",
    "LISTING_ITEM_COLUMNS",
    "OUTCOME_COLUMNS",
    "TABLES",
    "canonical",
    "chain_hash",
    "empty_args_sha256",
    "first_columns",
    "itemset_digest",
    "itemset_line",
    "row_body",
]

# (name, DuckDB type). Timestamps travel as integer microseconds since the epoch (UTC) and
# become TIMESTAMPTZ in the segment; lists are VARCHAR[]; JSON documents are VARCHAR.
DECISION_COLUMNS: Final[tuple[tuple[str, str], ...]] = (
    ("decision_id", "VARCHAR"),
    ("ts", "TIMESTAMPTZ"),
    ("request_time", "TIMESTAMPTZ"),
    ("trace_id", "VARCHAR"),
    ("span_id", "VARCHAR"),
    ("server", "VARCHAR"),
    ("transport", "VARCHAR"),
    ("session_id", "VARCHAR"),
    ("request_id", "VARCHAR"),
    ("method", "VARCHAR"),
    ("action", "VARCHAR"),
    ("kind", "VARCHAR"),
    ("resource", "VARCHAR"),
    ("resource_tags", "VARCHAR[]"),
    ("resource_namespace", "VARCHAR"),
    ("resource_version", "VARCHAR"),
    ("resource_uri", "VARCHAR"),
    ("resource_template", "VARCHAR"),
    ("resource_meta", "VARCHAR"),
    ("user_id", "VARCHAR"),
    ("agent_id", "VARCHAR"),
    ("roles", "VARCHAR[]"),
    ("auth_method", "VARCHAR"),
    ("authenticated", "BOOLEAN"),
    ("key_id", "VARCHAR"),
    ("claims", "VARCHAR"),
    ("context", "VARCHAR"),
    ("args", "VARCHAR"),
    ("args_redacted", "VARCHAR[]"),
    ("args_sha256", "VARCHAR"),
    ("allowed", "BOOLEAN"),
    ("reason", "VARCHAR"),
    ("rule", "VARCHAR"),
    ("policy", "VARCHAR"),
    ("policy_hash", "VARCHAR"),
    ("matched_rules", "VARCHAR[]"),
    ("errors", "VARCHAR[]"),
    ("rules_evaluated", "INTEGER"),
    ("eval_us", "DOUBLE"),
    ("shadow_allowed", "BOOLEAN"),
    ("shadow_reason", "VARCHAR"),
    ("shadow_rule", "VARCHAR"),
    ("shadow_policy", "VARCHAR"),
    ("shadow_policy_hash", "VARCHAR"),
    # Inputs other than the arguments that were redacted, as `column.path` (`claims.token`,
    # `context.headers.cookie`, `resource_meta.key`) or the column (`resource_uri`, and
    # `resource` when the name is the URI): replay treats them as unknown. NULL: none.
    ("inputs_redacted", "VARCHAR[]"),
    ("writer_id", "VARCHAR"),
    ("seq", "BIGINT"),
    ("prev_hash", "VARCHAR"),
    ("hash", "VARCHAR"),
)

OUTCOME_COLUMNS: Final[tuple[tuple[str, str], ...]] = (
    ("decision_id", "VARCHAR"),
    ("ts", "TIMESTAMPTZ"),
    ("status", "VARCHAR"),
    ("duration_us", "DOUBLE"),
    ("error_class", "VARCHAR"),
    ("writer_id", "VARCHAR"),
    ("seq", "BIGINT"),
    ("prev_hash", "VARCHAR"),
    ("hash", "VARCHAR"),
)

# A listing (`tools/list` & co.) decides every component under one request: its records
# share everything but the component and the answer. They are stored as one `listings` row
# whose `items` hold what differs, and read back as one `decisions` record per component
# (the reader's `decisions` view unnests them), so a list of 100 tools costs one row to
# encode, chain and write instead of 100. Item fields keep the names (and order) of the
# `decisions` columns they become; an item leaves out its NULL fields (DuckDB reads a
# missing field as NULL), which makes a listing of tools about 40% smaller.
_ITEM_NAMES: Final = (
    "decision_id", "kind", "resource", "resource_tags", "resource_namespace",
    "resource_version", "resource_uri", "resource_template", "resource_meta", "allowed",
    "reason", "rule", "policy", "policy_hash", "matched_rules", "errors", "rules_evaluated",
    "eval_us", "shadow_allowed", "shadow_reason", "shadow_rule", "shadow_policy",
    "shadow_policy_hash", "inputs_redacted",
)  # fmt: skip
LISTING_ITEM_COLUMNS: Final[tuple[tuple[str, str], ...]] = tuple(
    (name, dict(DECISION_COLUMNS)[name]) for name in _ITEM_NAMES
)
_SHARED_NAMES: Final = (
    "decision_id", "ts", "request_time", "trace_id", "span_id", "server", "transport",
    "session_id", "request_id", "method", "action", "user_id", "agent_id", "roles",
    "auth_method", "authenticated", "key_id", "claims", "context",
)  # fmt: skip


def _items_type(fields: Sequence[tuple[str, str]]) -> str:
    return "STRUCT(" + ", ".join(f"{n} {t}" for n, t in fields) + ")[]"


LISTING_COLUMNS: Final[tuple[tuple[str, str], ...]] = (
    *((name, dict(DECISION_COLUMNS)[name]) for name in _SHARED_NAMES),
    ("items", _items_type(LISTING_ITEM_COLUMNS)),
    # A listing's items are mostly the same from one request to the next (the same caller
    # lists the same components, with the same answers): the writer files each distinct
    # list of items once, as an item set (`itemsets/<items_sha256>.jsonl`), and a listing
    # then names it here instead of holding `items` (NULL). `items_eval_us` holds what
    # differs, each item's decision time, in item order. See `itemset_line`.
    ("items_sha256", "VARCHAR"),
    ("items_eval_us", "DOUBLE[]"),
    *OUTCOME_COLUMNS[-4:],  # the chain columns
)

TABLES: Final[dict[str, tuple[tuple[str, str], ...]]] = {
    "decisions": DECISION_COLUMNS,
    "outcomes": OUTCOME_COLUMNS,
    "listings": LISTING_COLUMNS,
}

TIMESTAMP_COLUMNS: Final = frozenset({"ts", "request_time"})

# Columns (and listing item fields) added after the first release: NULL, they are not in
# the canonical form, so rows written before them keep their bytes and hashes.
ADDED_COLUMNS: Final = frozenset({"inputs_redacted", "items_sha256", "items_eval_us"})

# An item set file holds one line: `ITEMSET_PREFIX`, the set's SHA-256 (hex), `ITEMSET_MID`,
# the items (the JSON array a listing would hold, without the items' `eval_us`), `}`.
# The hash is over the array's exact UTF-8 bytes: `verify` recomputes it from the line.
ITEMSET_PREFIX: Final = '{"items_sha256":"'
ITEMSET_MID: Final = '","items":'

# prev_hash of the first row of every chain
GENESIS: Final = "0" * 64


def first_columns(table: str) -> tuple[tuple[str, str], ...]:
    """`table`'s columns as first released, without `ADDED_COLUMNS` (nor item fields):
    what segments written before them hold."""
    return tuple(
        (name, _items_type([f for f in LISTING_ITEM_COLUMNS if f[0] not in ADDED_COLUMNS]))
        if name == "items"
        else (name, typ)
        for name, typ in TABLES[table]
        if name not in ADDED_COLUMNS
    )


def itemset_line(items_json: str) -> tuple[str, bytes]:
    """`(items_sha256, the file's line)` of an item set whose items are `items_json`."""
    data = _itemset_bytes(items_json)
    digest = hashlib.sha256(data).hexdigest()
    return digest, f"{ITEMSET_PREFIX}{digest}{ITEMSET_MID}".encode() + data + b"}\n"


def itemset_digest(items_json: str) -> str:
    """`items_sha256` of an item set whose items are `items_json` (`itemset_line`'s first
    part, without making the line: a listing's writer needs the name far more often than
    it files the set)."""
    return hashlib.sha256(_itemset_bytes(items_json)).hexdigest()


def _itemset_bytes(items_json: str) -> bytes:
    try:
        return items_json.encode()
    except UnicodeEncodeError:  # lone surrogates: filed and hashed as "?", as rows are
        return items_json.encode("utf-8", "replace")


def json_encoder(*, sort_keys: bool, default: Any = None) -> Any:
    """A compact JSON encoder (`str -> str`), built once: the C encoder when available,
    which skips the per-call set-up `json.dumps` pays (a third of its cost on short rows)."""
    try:
        from json.encoder import (  # type: ignore[attr-defined]
            c_make_encoder,
            encode_basestring,
        )
    except ImportError:  # pragma: no cover - pure-Python json
        c_make_encoder = None
    if c_make_encoder is None:  # pragma: no cover
        return json.JSONEncoder(
            separators=(",", ":"), ensure_ascii=False, sort_keys=sort_keys, default=default
        ).encode

    def fail(value: Any) -> Any:
        raise TypeError(f"{type(value).__name__} is not JSON serializable")

    make = c_make_encoder(
        None, default or fail, encode_basestring, None, ":", ",", sort_keys, False, True
    )
    join = "".join
    return lambda value: join(make(value, 0))


_dumps: Callable[[Any], str] = json_encoder(sort_keys=False)
_NAMES: Final = {table: tuple(name for name, _ in columns) for table, columns in TABLES.items()}


def _content(table: str, names: Sequence[str], values: Sequence[Any]) -> dict[str, Any]:
    """The row as the canonical form has it: `names` (a prefix of the table's columns)
    with `values`, without NULL `ADDED_COLUMNS`, a listing's items without NULL fields."""
    row = dict(zip(names, values, strict=True))
    for name in ADDED_COLUMNS:
        if name in row and row[name] is None:
            del row[name]
    if table == "listings" and row["items"]:
        row["items"] = [
            # (a writer's items are objects; anything else, read from a file, is hashed
            # as it is, so it is found out as an edit)
            {k: v for k, v in item.items() if v is not None} if isinstance(item, dict) else item
            for item in row["items"]
        ]
    return row


def canonical(table: str, values: Sequence[Any]) -> bytes:
    """The bytes a row's hash covers: one JSON object of every column but `hash`, keys in
    schema order, compact (timestamps as integer microseconds, lists as arrays, NULL as
    null, except inside a listing's items, which leave NULL fields out, and in the columns
    added later, `ADDED_COLUMNS`, left out when NULL), UTF-8. It is also the line the
    writer hands DuckDB, so what is hashed is exactly what is stored; anyone can recompute
    a hash with a JSON library.

    ```python
    canonical("outcomes", ["d1", 1, "ok", 2.5, None, "w", 1, GENESIS])[:40]
    # b'{"decision_id":"d1","ts":1,"status":"ok"'
    ```
    """
    return _dumps(_content(table, _NAMES[table][:-1], values)).encode()


def row_body(table: str, values: Sequence[Any]) -> str:
    """The canonical JSON of a row's content columns (all but the four chain columns),
    without its closing brace: what the writer queues, chains and stores."""
    return _dumps(_content(table, _NAMES[table][:-4], values))[:-1]


def empty_args_sha256() -> str:
    """`args_sha256` of a decision without arguments (every listing record)."""
    return hashlib.sha256(b"{}").hexdigest()


def chain_hash(table: str, values: Sequence[Any]) -> str:
    """SHA-256 (hex) of `canonical(table, values)`; `values` includes `prev_hash`, so rows
    chain."""
    return hashlib.sha256(canonical(table, values)).hexdigest()
