"""Reading the store: `open_store(path)` gives a DuckDB connection whose views
`decisions`, `outcomes`, `policies` and `decision_log` always show the segments on disk now.

`decisions` has one record per decision. Single decisions (calls, reads, gets) are stored
one row each (view `decision_rows`); a listing's decisions are stored as one `listings` row
and unnested here into one record per component, with the listing's chain columns.

Readers never open a writer's file for writing and never take a lock, so any number of
dashboards, replays, exports and CLIs can read while servers write. Before each query the
views are re-pointed at the current segment list (a directory listing: cheap); the writers'
hot files are read as they grow, so new rows show up at the writers' next flush (0.5 s by
default). A segment that vanishes under a query
(compaction, retention) makes the query retry on the fresh list.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Final

from guard.audit.schema import LISTING_COLUMNS, TABLES, empty_args_sha256
from guard.audit.segments import (
    MAX_ROW_BYTES,
    connect,
    json_select,
    scan_segments,
    sql_paths,
)
from guard.errors import AuditError

__all__ = ["AuditStore", "open_store"]

POLICY_COLUMNS: Final = {
    "policy_hash": "VARCHAR",
    "position": "INTEGER",
    "name": "VARCHAR",
    "source": "VARCHAR",
    "version": "VARCHAR",
    "text": "VARCHAR",
    "text_sha256": "VARCHAR",
    "recorded_at": "TIMESTAMPTZ",
}

# an item set file's line (`schema.itemset_line`)
ITEMSET_COLUMNS: Final = (
    ("items_sha256", "VARCHAR"),
    ("items", dict(LISTING_COLUMNS)["items"]),
)

_DECISION_LOG = """
CREATE OR REPLACE VIEW decision_log AS
SELECT d.*, o.ts AS outcome_ts, o.status, o.duration_us, o.error_class
FROM decisions d LEFT JOIN outcomes o USING (decision_id)
"""

# One record per component of each listing; a listing has no arguments. An item stored
# without its id has the listing's id and its position, from 1 (`rows.listing_parts`). A
# listing naming an item set (`items_sha256`) takes its items from it, and each item's
# `eval_us` from `items_eval_us`.
_DECISIONS = f"""
CREATE OR REPLACE VIEW decisions AS
SELECT * FROM decision_rows
UNION ALL BY NAME
SELECT * EXCLUDE (_listing, _position, _evals)
    REPLACE (
        coalesce(decision_id, _listing || '.' || _position) AS decision_id,
        coalesce(eval_us, _evals[_position]) AS eval_us
    )
FROM (
    SELECT l.* EXCLUDE (decision_id, items, items_sha256, items_eval_us),
        l.decision_id AS _listing, l.items_eval_us AS _evals,
        unnest(coalesce(l.items, s.items), max_depth := 2),
        generate_subscripts(coalesce(l.items, s.items), 1) AS _position,
        '{{}}' AS args, CAST([] AS VARCHAR[]) AS args_redacted,
        '{empty_args_sha256()}' AS args_sha256
    FROM listings l LEFT JOIN itemsets s ON s.items_sha256 = l.items_sha256
)
"""  # noqa: S608 - constants only

# the view each table's segments are read through
TABLE_VIEWS: Final = {table: "decision_rows" if table == "decisions" else table for table in TABLES}

# A query meets a file that vanished after it was listed (a conversion, roll-up or
# compaction replaced it) at most this many times in a row before the error is raised.
_RETRIES: Final = 30


def _empty(columns: dict[str, str] | tuple[tuple[str, str], ...]) -> str:
    pairs = columns.items() if isinstance(columns, dict) else columns
    cols = ", ".join(f"CAST(NULL AS {typ}) AS {name}" for name, typ in pairs)
    return f"SELECT {cols} WHERE false"


def policies_select(files: list[Path]) -> str:
    """SQL reading policy text files as the `policies` view does (`verify` checks what
    readers read)."""
    cols = ", ".join(f"{k}: '{v}'" for k, v in POLICY_COLUMNS.items())
    return (
        f"SELECT * FROM read_json([{sql_paths(files)}], format='newline_delimited', "  # noqa: S608
        f"columns={{{cols}}})"
    )


class AuditStore:
    """A read-only view of a store, safe while servers write it.

    Attribute access falls through to the underlying `duckdb.DuckDBPyConnection`
    (`store.con`), so `store.sql(...)`, `store.execute(...)`, `store.table("decision_log")`
    work as on any connection. Those, and DuckDB's aliases `query`, `from_query` and `view`,
    see the files as they are now (listed again before each query); anything else reached
    through the connection (a `cursor()`) sees them as of the last of those calls.

    ```python
    store = open_store("mcp-guard-audit.duckdb")
    store.sql("SELECT user_id, count(*) FROM decisions GROUP BY ALL").fetchall()
    ```
    """

    def __init__(self, path: str | Path) -> None:

        self.path = Path(path)
        if self.path.exists() and not self.path.is_dir():
            raise AuditError(
                f"{self.path} is a file, not an MCP Guard store (a store is a directory of "
                "Parquet segments; see the README's audit section)"
            )
        self.con = connect()
        self._listed: dict[str, tuple[str, ...]] = {}
        # per table: marker path -> sources (markers never change; collected ones forgotten)
        self._markers: dict[str, dict[str, Any]] = {table: {} for table in TABLES}
        # (retried like any query: a hot file listed may be converted before it is read)
        self._retry(lambda: (self.con.execute(_DECISIONS), self.con.execute(_DECISION_LOG)))

    def __getattr__(self, name: str) -> Any:
        return getattr(self.con, name)

    def __enter__(self) -> AuditStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.con.close()

    def files(self, table: str) -> list[Path]:
        """The files of `table` a query would read now: its Parquet segments, then the
        writers' hot files not yet converted (where a running server's newest rows are)."""
        segments, hot = scan_segments(self.path / table, self._markers.get(table))
        return [*segments, *hot]

    def _refresh(self, force: bool = False) -> None:
        views = []
        for table, columns in TABLES.items():
            files, hot = scan_segments(self.path / table, self._markers[table])
            key = tuple(str(f) for f in (*files, *hot))
            if not force and self._listed.get(table) == key:
                continue
            # the schema's columns first, in its order and types: segments written before
            # a column was added (`ADDED_COLUMNS`) read it as NULL
            parts = [_empty(columns)]
            if files:
                listed = sql_paths(files)
                parts.append(f"SELECT * FROM read_parquet([{listed}], union_by_name=true)")  # noqa: S608
            if hot:  # the writers' newest rows, read as they grow
                rows = json_select(table, hot, hot=True)
                if table == "listings":
                    # Rows written after the item sets were listed below may name a set
                    # filed since: left out until a later query lists it (files listed
                    # here named only sets filed before them, so theirs are all listed).
                    rows = (
                        f"SELECT * FROM ({rows}) WHERE items_sha256 IS NULL "  # noqa: S608
                        "OR items_sha256 IN (SELECT items_sha256 FROM itemsets)"
                    )
                parts.append(rows)
            views.append((table, key, " UNION ALL BY NAME ".join(parts)))
        # listed after the tables' files: every set their rows name is among them
        set_files = sorted((self.path / "itemsets").glob("*.jsonl"))
        key = tuple(str(f) for f in set_files)
        if force or self._listed.get("itemsets") != key:
            # one row per distinct set: a set filed by two writers at once is one file
            body = _empty(ITEMSET_COLUMNS)
            if set_files:
                listed = sql_paths(set_files)
                cols = ", ".join(f"{k}: '{v}'" for k, v in ITEMSET_COLUMNS)
                body += (
                    f" UNION ALL SELECT * FROM read_json([{listed}], "  # noqa: S608
                    f"format='newline_delimited', columns={{{cols}}}, "
                    f"maximum_object_size={MAX_ROW_BYTES})"
                )
            self.con.execute(f"CREATE OR REPLACE VIEW itemsets AS {body}")
            self._listed["itemsets"] = key
        for table, key, body in views:
            self.con.execute(f"CREATE OR REPLACE VIEW {TABLE_VIEWS[table]} AS {body}")
            self._listed[table] = key
        policy_files = sorted((self.path / "policies").glob("*.jsonl"))
        key = tuple(str(f) for f in policy_files)
        if force or self._listed.get("policies") != key:
            body = policies_select(policy_files) if policy_files else _empty(POLICY_COLUMNS)
            self.con.execute(f"CREATE OR REPLACE VIEW policies AS {body}")
            self._listed["policies"] = key

    def _retry(self, run: Any) -> Any:
        import duckdb

        for attempt in range(_RETRIES):
            try:
                # Listing files and creating the views can meet a file that a roll-up or
                # compaction removed a moment after it was listed: list again.
                self._refresh(force=attempt > 0)
                return run()
            except (duckdb.IOException, duckdb.InvalidInputException, duckdb.HTTPException):
                # a segment vanished between listing and reading (compaction): list again
                if attempt == _RETRIES - 1:
                    raise
                time.sleep(min(0.01 * (attempt + 1), 0.1))
        raise AssertionError("unreachable")

    def sql(self, query: str, **kwargs: Any) -> Any:
        """`DuckDBPyConnection.sql` on fresh views."""
        return self._retry(lambda: self.con.sql(query, **kwargs))

    def execute(self, query: str, parameters: Any = None) -> Any:
        """`DuckDBPyConnection.execute` on fresh views (retried if a segment vanished)."""
        return self._retry(lambda: self.con.execute(query, parameters))

    def table(self, name: str) -> Any:
        """A relation over one of the views, refreshed now."""
        return self._retry(lambda: self.con.table(name))

    # DuckDB's aliases: the same queries on fresh views
    query = sql
    from_query = sql
    view = table

    def policy_texts(self, policy_hash: str) -> list[str]:
        """The texts of the policy set with this content hash, in load order (for replay:
        `load_policies(store.policy_texts(h))`). Raises `AuditError` if it was not stored,
        or if the texts stored do not hash to `policy_hash` (they were edited: replaying
        them would not re-decide what was decided)."""
        from guard.policy.policyset import texts_hash

        rows = self.execute(
            "SELECT name, text FROM policies WHERE policy_hash = ? ORDER BY position",
            [policy_hash],
        ).fetchall()
        if not rows:
            raise AuditError(f"policy set {policy_hash!r} is not in the store {self.path}")
        got = texts_hash((str(name), str(text)) for name, text in rows)
        if got != policy_hash:
            raise AuditError(
                f"the stored texts of policy set {policy_hash[:12]} hash to {got[:12]}: "
                "they were edited (mcp-guard verify names the file)"
            )
        return [r[1] for r in rows]


def open_store(path: str | Path) -> AuditStore:
    """Open a store for reading (dashboard, replay, export, CLI), even while servers write.

    ```python
    store = open_store("mcp-guard-audit.duckdb")
    store.sql("SELECT allowed, count(*) FROM decision_log GROUP BY ALL").fetchall()
    ```
    """
    return AuditStore(path)
