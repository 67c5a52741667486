"""`verify`: check every writer's hash chain and name the first bad row.

A chain is the rows of one writer in one table, ordered by `seq`. Each row's `hash` covers
its content and the previous row's hash, so an edited row breaks its own hash, a deleted
row leaves a gap in `seq`, a reordered or inserted row breaks `prev_hash`, and rows cut
from the end, or rewritten and chained again, are caught against the head (seq and hash)
the writer keeps in `writers/W.json`.
"""

from __future__ import annotations

import hashlib
import heapq
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from guard.audit.schema import (
    GENESIS,
    ITEMSET_MID,
    ITEMSET_PREFIX,
    LISTING_ITEM_COLUMNS,
    TABLES,
    TIMESTAMP_COLUMNS,
    canonical,
    chain_hash,
    first_columns,
)
from guard.audit.segments import (
    connect,
    file_origin,
    json_select,
    read_json_file,
    scan_segments,
    sql_paths,
)

_RESCANS = 10  # files changed while they were being read: list them again
# runs of rows (see `_sound_chains`) kept before a store is taken for not a writer's: a
# writer's files hold one run per file, a merged segment one per writer it merged
_MAX_RUNS = 100_000
# a table's files are shared among processes (`_Workers`) one per this much Parquet at
# least (~30,000 decisions, ~0.6 s of work; a worker takes ~0.2 s to start), up to this
# many processes
_PARALLEL_BYTES = 4 * 1024 * 1024
_MAX_WORKERS = 8

Head = tuple[int, str | None]  # (seq, hash) of the last row a writer recorded in a chain

__all__ = ["Cut", "MemoryLimitError", "Problem", "VerifyReport", "verify"]


@dataclass(frozen=True, slots=True)
class Problem:
    """One row (or gap) that breaks a chain."""

    table: str
    writer_id: str
    seq: int | None
    message: str
    decision_id: str | None = None
    file: str | None = None
    row: int | None = None  # row number inside `file`

    def __str__(self) -> str:
        where = f"{self.table} writer {self.writer_id} seq {self.seq}"
        if self.decision_id:
            where += f" (decision {self.decision_id})"
        if self.file is not None:
            where += f" in {Path(self.file).name} row {self.row}"
        return f"{where}: {self.message}"


@dataclass(frozen=True, slots=True)
class Cut:
    """Where retention cut a chain (`anchors/`): its rows before `first_seq` were deleted on
    purpose, at `cut_at`. `verify` trusts anchors as it trusts the writers' heads: compare
    them with a copy kept elsewhere to know that no cut was forged."""

    table: str
    writer_id: str
    first_seq: int
    cut_at: str

    def __str__(self) -> str:
        return (
            f"{self.table} writer {self.writer_id}: rows before seq {self.first_seq} "
            f"deleted by retention (cut at {self.cut_at})"
        )


@dataclass(slots=True)
class VerifyReport:
    """What `verify` found: `ok`, rows and chains checked, every problem, the first one,
    the retention cuts it accepted (`cuts`), and the policy sets named whose texts were
    never filed (`unfiled`)."""

    rows: int = 0
    chains: int = 0
    problems: list[Problem] = field(default_factory=list)
    cuts: list[Cut] = field(default_factory=list)
    # policy sets decisions name whose texts no writer ever filed (records appended by
    # hand without `AuditLog.record_policies`): not replayable, but not tampering either
    unfiled: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def first(self) -> Problem | None:
        return self.problems[0] if self.problems else None


def _select(table: str, files: list[Path], *, ordered: bool = True) -> str:
    """The rows of segments `files` (values as `_check_rows` takes them, then the file and
    row number), in chain order; unordered, as DuckDB reads them (each file's rows in
    their order, while DuckDB preserves insertion order)."""
    cols = [_selected(name, typ) for name, typ in TABLES[table]]
    listed = sql_paths(files)
    # every column, typed: segments written before a column was added read it as NULL
    typed = ", ".join(f"CAST(NULL AS {typ}) AS {name}" for name, typ in TABLES[table])
    return (
        f"SELECT {', '.join(cols)}, filename, file_row_number FROM (SELECT {typed}, "  # noqa: S608
        "NULL AS filename, NULL AS file_row_number WHERE false UNION ALL BY NAME "
        f"SELECT * FROM read_parquet([{listed}], union_by_name=true, filename=true, "
        "file_row_number=true))"
        + (" ORDER BY writer_id, seq, filename, file_row_number" if ordered else "")
    )


def _selected(name: str, typ: str) -> str:
    if name in TIMESTAMP_COLUMNS:
        return f"epoch_us({name})"
    if name in ("writer_id", "seq"):
        # the chains are walked by these, whatever type a segment was rewritten with
        # (`_check_types` names it): NULL if it cannot be read as the schema's type
        return f"TRY_CAST({name} AS {typ}) AS {name}"
    return name


def verify(path: str | Path, *, memory_limit: str | None = None) -> VerifyReport:
    """Check every hash chain of the store at `path`.

    A sound table is read in one pass, as DuckDB reads its files, in tens of MB (its
    files' row groups) whatever its size; a large one is shared out among as many
    processes as this one may use cores (`_sound_chains`, up to `_MAX_WORKERS`), unless
    a `memory_limit` is given. One where anything is wrong is read again in chain order,
    to name the first bad row: DuckDB sorts it, holding about 1.1 GB per million rows;
    past `memory_limit` (a DuckDB size such as "4GB"; None: DuckDB's default, 80% of the
    machine's memory) it tries to sort on disk, in a temporary directory of its own under
    `TMPDIR`, removed afterwards (not `./.tmp` wherever it runs). DuckDB cannot always:
    rows of ~8 KB failed within 600 MB, where 512 MB did for a million rows of ~1.3 KB;
    it then raises `duckdb.OutOfMemoryException` (as the one pass does within a limit of
    a few MB).

    ```python
    report = verify("mcp-guard-audit.duckdb")
    if not report.ok:
        print(report.first)  # names the table, writer, seq, file and row
    ```
    """

    root = Path(path)
    report = VerifyReport()
    heads = _heads(root, report)
    with tempfile.TemporaryDirectory(prefix="mcp-guard-verify-") as spill:
        con = _connect(memory_limit, spill)
        # a memory limit is one process's: then none are started
        workers = _Workers() if memory_limit is None else None
        try:
            _check_policies(con, root, report)
            sets = _check_itemsets(root, report)
            report.cuts = _cuts(root, report)
            for table in TABLES:
                seen: set[str] = set()
                _check_table(con, table, root, report, seen, heads, sets, workers)
                for wid, chains in heads.items():
                    head_seq = chains.get(table, (0, None))[0]
                    if wid not in seen and head_seq > _anchor(root, table, wid)[0] - 1:
                        report.problems.append(
                            Problem(table, wid, None, f"all rows up to seq {head_seq} missing")
                        )
        finally:
            con.close()
    _check_named_policies(root, report)
    return report


def _connect(memory_limit: str | None, spill: str) -> Any:
    import duckdb

    if memory_limit is None:
        return connect(temp_directory=spill)
    try:
        return connect(memory_limit=memory_limit, temp_directory=spill)
    except duckdb.Error:
        raise MemoryLimitError(memory_limit) from None


class MemoryLimitError(ValueError):
    """A memory limit DuckDB does not read as a size."""

    def __init__(self, value: str) -> None:
        super().__init__(f"memory limit {value!r} is not a size such as '1GB' or '512MB'")


def _check_named_policies(root: Path, report: VerifyReport) -> None:
    """Every policy set a decision names (a call's, a listed component's, a shadow
    decision's) must have its texts in the store: replay re-decides with them, and
    deleting them touches no chain. A set a writer's head says it filed and that is gone
    was deleted; one no writer filed (an `AuditLog` fed by hand) is noted in `unfiled`.
    Listed after the rows are read: a writer files a set's texts before the rows naming
    it, so a set put in force meanwhile is not missed. (Only content hashes: a log fed by
    hand may name sets by other ids.)"""
    from guard.audit.store import open_store

    with open_store(root) as store:
        named = store.execute(
            "SELECT DISTINCT h FROM (SELECT policy_hash AS h FROM decisions UNION ALL "
            "SELECT shadow_policy_hash FROM decisions) WHERE h IS NOT NULL ORDER BY h"
        ).fetchall()
    stored = {f.stem for f in (root / "policies").glob("*.jsonl")}
    filed = _filed_policies(root, report)
    for (digest,) in named:
        if len(digest) != 64 or digest in stored or not _is_hex(digest):
            continue
        if digest in filed:
            report.problems.append(
                Problem("policies", "-", None,
                        f"the texts of policy set {digest[:12]}, which decisions name, are "
                        "gone: deleted (replay cannot re-decide them)")
            )  # fmt: skip
        else:
            report.unfiled.append(digest)


def _filed_policies(root: Path, report: VerifyReport) -> set[str]:
    """The policy sets the writers' heads say they filed."""
    filed: set[str] = set()
    for path in sorted((root / "writers").glob("*.json")):
        doc = read_json_file(path)
        listed = doc.get("policies", []) if isinstance(doc, dict) else []
        if not isinstance(listed, list) or not all(isinstance(h, str) for h in listed):
            report.problems.append(
                Problem("writers", path.stem, None,
                        "head file malformed: its filed policy sets are not a list of hashes",
                        None, str(path))
            )  # fmt: skip
            continue
        filed.update(listed)
    return filed


def _is_hex(text: str) -> bool:
    try:
        bytes.fromhex(text)
    except ValueError:
        return False
    return True


def _check_table(
    con: Any,
    table: str,
    root: Path,
    report: VerifyReport,
    seen: set[str],
    heads: dict[str, dict[str, Head]],
    sets: dict[str, int],
    workers: _Workers | None = None,
) -> None:
    """The table's segments and hot files, as one sequence of rows per chain. A file
    listed may be converted, merged or collected before it is read (writers and
    compaction keep working): the files are then listed and read again."""
    import duckdb

    for attempt in range(_RESCANS):
        files, hot = scan_segments(root / table)
        found = VerifyReport()
        seen_now = set(seen)
        try:
            hot_rows = _hot_rows(table, hot, found)
            files = _check_types(con, table, files, found)
            sound = None
            if not found.problems:
                sound = _sound_chains(con, table, files, hot_rows, root, heads, sets, workers)
            if sound is not None:
                found.rows, found.chains = sound[0], len(sound[1])
                seen_now |= sound[1]
            else:  # something is wrong: walk the chains in order, to say what and where
                parquet_rows: Iterable[tuple[Any, ...]] = ()
                if files:
                    parquet_rows = _fetch(con.execute(_select(table, files)))
                rows = heapq.merge(parquet_rows, hot_rows, key=_chain_order(table))
                _check_rows(table, rows, root, found, seen_now, heads, sets)
                if files:
                    _check_physical_order(con, table, files, found)
        except (FileNotFoundError, duckdb.IOException, duckdb.InvalidInputException):
            if attempt < _RESCANS - 1:
                time.sleep(min(0.05 * attempt, 0.5))
                continue
            raise
        seen |= seen_now
        report.rows += found.rows
        report.chains += found.chains
        # in chain order, whichever check found them: `report.first` is the first bad row
        report.problems.extend(sorted(found.problems, key=_chain_position))
        return


def _chain_position(problem: Problem) -> tuple[str, int]:
    """Where a problem is in its table's chains (a whole file's, or a row's without a
    seq, comes first in its writer's)."""
    return problem.writer_id, -1 if problem.seq is None else problem.seq


def _check_policies(con: Any, root: Path, report: VerifyReport) -> None:
    """Each recorded policy set's texts (`policies/<hash>.jsonl`) must hash to the content
    hash they are filed under, which the decisions name: replay re-decides with them.
    They are read as readers read them (DuckDB's parser, which may see another value than
    Python's in a line rewritten, or none)."""
    import duckdb

    from guard.audit.store import policies_select
    from guard.policy.policyset import texts_hash

    for path in sorted((root / "policies").glob("*.jsonl")):
        expected = path.stem
        try:
            docs = con.execute(
                f"SELECT policy_hash, name, text FROM ({policies_select([path])}) "  # noqa: S608
                "ORDER BY position"
            ).fetchall()
            named = [(str(name), str(text)) for _, name, text in docs]
            hashes = {str(h) for h, _, _ in docs}
        except duckdb.Error:
            report.problems.append(
                Problem("policies", "-", None, "unreadable policy texts", None, str(path))
            )
            continue
        if hashes != {expected} or texts_hash(named) != expected:
            report.problems.append(
                Problem("policies", "-", None,
                        f"the texts of policy set {expected[:12]} do not hash to it: edited "
                        "(replay would not re-decide what was decided)", None, str(path))
            )  # fmt: skip


def _check_itemsets(root: Path, report: VerifyReport) -> dict[str, int]:
    """Each item set (`itemsets/<sha256>.jsonl`, `schema.itemset_line`) must hash to the
    name it is filed under, which the listings naming it hold. Returns the sets that do,
    with their number of items."""
    sets: dict[str, int] = {}
    for path in sorted((root / "itemsets").glob("*.jsonl")):
        size = _itemset_size(path)
        if size is not None:
            sets[path.stem] = size
        else:
            report.problems.append(
                Problem("itemsets", "-", None,
                        f"item set {path.stem[:12]} does not hash to its name: edited (the "
                        "listings naming it would show other items)", None, str(path))
            )  # fmt: skip
    return sets


def _itemset_size(path: Path) -> int | None:
    """The number of items of the item set at `path`, None if it is missing or does not
    hash to its name."""
    digest = path.stem
    head = f"{ITEMSET_PREFIX}{digest}{ITEMSET_MID}".encode()
    try:
        data = path.read_bytes()
        items = data[len(head) : -2]
        if (
            data.startswith(head)
            and data.endswith(b"}\n")
            and hashlib.sha256(items).hexdigest() == digest
        ):
            return len(json.loads(items))
    except (OSError, ValueError, TypeError):
        pass
    return None


def _filed_since(root: Path, digest: str, sets: dict[str, int]) -> int | None:
    """The size of item set `digest` if a writer filed it (soundly) after `verify` listed
    the sets: a listing read later may name it. None if it is not there, or not sound."""
    if len(digest) != 64 or not all(c in "0123456789abcdef" for c in digest):
        return None
    size = _itemset_size(root / "itemsets" / f"{digest}.jsonl")
    if size is not None:
        sets[digest] = size
    return size


def _fetch(cur: Any) -> Iterator[tuple[Any, ...]]:
    while batch := cur.fetchmany(10_000):
        yield from batch


def _hot_rows(table: str, hot: list[Path], report: VerifyReport) -> list[tuple[Any, ...]]:
    """The rows of hot files, read line by line, as `_select` gives them (values, file,
    row number), sorted like it. A last line without its newline is a write in progress
    (or cut short by a crash: never acknowledged) and is left out, unless it is a whole
    row (readers show it: it is checked); any other line that is not a row is a problem,
    and so is a row out of order in its file.

    Each line must be, byte for byte, the canonical JSON its hash covers: the writer
    stores exactly that, and readers parse the line with another parser (DuckDB's), which
    keeps the first of a repeated key where Python keeps the last, and drops a line it
    cannot parse where Python may not. A line in any other form could show readers a row
    other than the one checked here."""
    names = [name for name, _ in TABLES[table]]
    rows: list[tuple[Any, ...]] = []
    for path in hot:
        lines = path.read_bytes().split(b"\n")
        origin = file_origin(path.name)
        wid = path.name if origin is None else origin[0]
        last_seq = 0
        if lines[-1] and (_whole_row(lines[-1]) or _shown_by_readers(table, lines[-1])):
            lines.append(b"")  # complete but for its newline: readers show it
        for number, line in enumerate(lines[:-1]):
            try:
                doc = json.loads(line)
                values = tuple(doc.get(name) for name in names)
                seq = doc["seq"]
                if not _is_chained(values[-4], seq):
                    raise TypeError("writer_id and seq of other types")
            except (ValueError, TypeError, KeyError, AttributeError):
                report.problems.append(
                    Problem(table, wid, None, "unreadable row", None, str(path), number)
                )
                continue
            if table == "listings" and isinstance(values[_ITEMS_AT], list):
                values = _schema_items(values)
            if not _is_canonical(table, values, line):
                report.problems.append(
                    Problem(table, str(values[-4]), seq,
                            "not the canonical form its hash covers: the line was edited",
                            values[0], str(path), number)
                )  # fmt: skip
            if seq < last_seq:
                report.problems.append(
                    Problem(table, str(values[-4]), seq,
                            "row out of order in its segment: rows were reordered",
                            values[0], str(path), number)
                )  # fmt: skip
            last_seq = seq
            rows.append((*values, str(path), number))
    rows.sort(key=_chain_order(table))
    return rows


_ADDED_BY_SELECT: Final = ("filename", "file_row_number")  # columns `_select` adds
_ITEMS_AT: Final = [name for name, _ in TABLES["listings"]].index("items")
_SET_AT: Final = [name for name, _ in TABLES["listings"]].index("items_sha256")
_ITEM_NAMES: Final = tuple(name for name, _ in LISTING_ITEM_COLUMNS)


def _is_chained(wid: Any, seq: Any) -> bool:
    """Whether a row has a writer and a seq to walk its chain by."""
    return isinstance(wid, str) and isinstance(seq, int) and not isinstance(seq, bool)


def _whole_row(line: bytes) -> bool:
    try:
        doc = json.loads(line)
    except ValueError:
        return False
    return isinstance(doc, dict) and "hash" in doc


def _shown_by_readers(table: str, line: bytes) -> bool:
    """Whether readers show `line`, a hot file's last line without its newline, as a row.
    A write in progress never parses; DuckDB's parser takes some lines Python's refuses
    (a trailing comma), and those must not pass for a write in progress unchecked."""
    import tempfile

    import duckdb

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "line.jsonl"
        path.write_bytes(line)
        con = connect()
        try:
            shown = con.execute(f"SELECT count(*) FROM ({json_select(table, [path], hot=True)})")  # noqa: S608
            return shown.fetchone() != (0,)
        except duckdb.Error:
            return False
        finally:
            con.close()


def _schema_items(values: tuple[Any, ...]) -> tuple[Any, ...]:
    """A listing's items as a segment holds them: the item fields in schema order, no
    others (DuckDB reads only those)."""
    items = [
        {k: item.get(k) for k in _ITEM_NAMES} if isinstance(item, dict) else item
        for item in values[_ITEMS_AT]
    ]
    return (*values[:_ITEMS_AT], items, *values[_ITEMS_AT + 1 :])


def _is_canonical(table: str, values: tuple[Any, ...], line: bytes) -> bool:
    try:
        body = canonical(table, values[:-1])
        return line == body[:-1] + b',"hash":' + json.dumps(values[-1]).encode() + b"}"
    except (TypeError, ValueError):
        return False


def _chain_order(table: str) -> Callable[[tuple[Any, ...]], tuple[Any, ...]]:
    """The order `_select` gives rows in (writer, seq, file, row number), as a sort key
    for rows shaped like its result."""
    width = len(TABLES[table])

    def key(row: tuple[Any, ...]) -> tuple[Any, ...]:
        return (row[width - 4] or "", row[width - 3] or 0, row[width], row[width + 1])

    return key


def _heads(root: Path, report: VerifyReport) -> dict[str, dict[str, Head]]:
    """Each writer's head (`writers/W.json`): table -> `Head`. One that does not parse is
    left out (the writer does not sync it: a crash may leave it so); one of another
    shape was edited, and is reported."""
    heads = {}
    for path in sorted((root / "writers").glob("*.json")):
        doc = read_json_file(path)
        if doc is None:
            continue
        chains = _head_chains(doc)
        if chains is None:
            report.problems.append(
                Problem("writers", path.stem, None,
                        "head file malformed: edited (where its chains end is unknown)",
                        None, str(path))
            )  # fmt: skip
        else:
            heads[path.stem] = chains
    return heads


def _head_chains(doc: Any) -> dict[str, Head] | None:
    if not isinstance(doc, dict):
        return None
    chains: dict[str, Head] = {}
    for table in TABLES:
        entry = doc.get(table)
        if entry is None:  # a head written before the table existed
            continue
        if not isinstance(entry, dict) or not _is_seq(entry.get("seq")):
            return None
        head_hash = entry.get("hash")
        if head_hash is not None and not isinstance(head_hash, str):
            return None
        chains[table] = (entry["seq"], head_hash)
    return chains


def _is_seq(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _anchor_start(doc: Any) -> tuple[int, str] | None:
    """`(first seq, prev_hash)` of an anchor document, None if it is not one."""
    if (
        isinstance(doc, dict)
        and _is_seq(doc.get("first_seq"))
        and doc["first_seq"] >= 1
        and isinstance(doc.get("prev_hash"), str)
    ):
        return doc["first_seq"], doc["prev_hash"]
    return None


def _cuts(root: Path, report: VerifyReport) -> list[Cut]:
    """The retention cuts the anchors record; an anchor of another shape was edited (its
    chain is then checked from seq 1)."""
    cuts = []
    for path in sorted((root / "anchors").glob("*.json")):
        doc = read_json_file(path)
        table, _, wid = path.stem.partition("-")
        start = _anchor_start(doc)
        if start is not None:
            cuts.append(Cut(table, wid, start[0], str(doc.get("cut_at", "?"))))
        elif doc is not None:
            report.problems.append(
                Problem(table, wid, None, "retention anchor malformed: edited", None, str(path))
            )
    return cuts


def _anchor(root: Path, table: str, wid: str) -> tuple[int, str]:
    start = _anchor_start(read_json_file(root / "anchors" / f"{table}-{wid}.json"))
    return (1, GENESIS) if start is None else start


_Run = tuple[int, str, int, str]  # (first seq, its prev_hash, last seq, its hash)


@dataclass(slots=True)
class _Pass:
    """What one pass over some of a table's rows found, all of it as a writer leaves it:
    how many rows, each writer's runs, and the hash of the row each writer's head names."""

    rows: int
    runs: dict[str, list[_Run]]
    at_head: dict[str, str]


def _sound_chains(
    con: Any,
    table: str,
    files: list[Path],
    hot_rows: list[tuple[Any, ...]],
    root: Path,
    heads: dict[str, dict[str, Head]],
    sets: dict[str, int],
    workers: _Workers | None = None,
) -> tuple[int, set[str]] | None:
    """`(rows, writers)` if every chain of `table` is sound, read in one pass without
    sorting (memory for a few numbers per file and writer, not ~1.1 GB per million rows);
    None if anything is not as a writer leaves it, for `_check_rows` to walk the chains in
    order and say what (and where) exactly.

    A writer appends its rows to a file in chain order: each file's rows of one writer are
    runs of consecutive rows, each linked to the one before. Each row is checked against
    its hash as it is read; each run is kept as `(first seq, its prev_hash, last seq, its
    hash)`, and at the end a writer's runs, put in seq order, must join into one chain from
    its anchor (rows before a retention cut, an interrupted retention's, do not), at least
    as long as its head says, through the row its head names. What `_check_rows` and
    `_check_physical_order` would take exception to, this refuses: a row without writer
    or seq, a row that does not match its hash, a listing whose item set is missing or
    does not fit, a seq that goes back in its file, a gap, an overlap or a broken link
    between runs.

    A file's runs need none of another file's rows: with `workers`, a large table's files
    are read in groups, each in a process of its own (Python reads and hashes one row at
    a time per process)."""
    head_seqs = {wid: chains[table][0] for wid, chains in heads.items() if table in chains}
    groups = _groups(files, workers.count if workers is not None else 1)
    pending = [] if workers is None else workers.submit(table, groups[1:], root, head_seqs, sets)
    if len(pending) != len(groups) - 1:  # no process to spare: read all here
        pending = []
        groups = [files] if files else []
    try:
        passes = [_pass(table, hot_rows, root, head_seqs, sets)]
        if groups:
            passes.append(_read_pass(con, table, groups[0], root, head_seqs, sets))
        for worker in pending:
            if any(found is None for found in passes):
                break  # not sound: the rest need not be waited for
            found = worker.result()
            if isinstance(found, str):  # `_LISTED_AGAIN`
                raise FileNotFoundError("a segment went while it was read")
            passes.append(found)
    finally:
        for worker in pending:  # (none left running when this one raised)
            worker.cancel()
    if any(found is None for found in passes):
        return None
    return _joined(table, [found for found in passes if found is not None], root, heads)


def _read_pass(
    con: Any,
    table: str,
    files: list[Path],
    root: Path,
    head_seqs: dict[str, int],
    sets: dict[str, int],
) -> _Pass | None:
    """`_pass` over segments `files`, read on `con` with one thread: each file's rows then
    come in their order as they are decoded, none held back for another thread's to go
    first (~300 MB more on merged files). The sort, if it comes to that, takes them all."""
    con.execute("SET threads = 1")
    try:
        rows = _fetch(con.execute(_select(table, files, ordered=False)))
        return _pass(table, rows, root, head_seqs, sets)
    finally:
        con.execute("RESET threads")


def _pass(
    table: str,
    rows: Iterable[tuple[Any, ...]],
    root: Path,
    head_seqs: dict[str, int],
    sets: dict[str, int],
) -> _Pass | None:
    """One pass over `rows` (as `_select` gives them, unordered: each file's in its
    order), or None as soon as one is not as a writer leaves it (`_sound_chains`)."""
    width = len(TABLES[table])
    wid_at, seq_at = width - 4, width - 3
    open_runs: dict[tuple[Any, str], list[Any]] = {}  # (file, writer) -> its last run
    runs: dict[str, list[_Run]] = {}  # writer -> its closed runs
    at_head: dict[str, str] = {}  # writer -> hash of the row its head names
    last_row: dict[Any, int] = {}  # file -> the last row number read from it
    count = closed = 0
    for row in rows:
        values = row[:width]
        filename, rownum = row[width], row[width + 1]
        wid, seq = values[wid_at], values[seq_at]
        if not _is_chained(wid, seq) or rownum <= last_row.get(filename, -1):
            return None  # (read out of its file's order: not known to be a writer's order)
        last_row[filename] = rownum
        if table == "listings" and values[_SET_AT] is not None:
            size = sets.get(str(values[_SET_AT]))
            if size is None:
                size = _filed_since(root, str(values[_SET_AT]), sets)
            evals = values[_SET_AT + 1]
            if size is None or not isinstance(evals, list) or len(evals) != size:
                return None
        digest, prev = values[-1], values[-2]
        if chain_hash(table, values[:-1]) != digest:
            return None
        if seq == head_seqs.get(wid):
            at_head[wid] = digest
        count += 1
        run = open_runs.get((filename, wid))
        if run is not None:
            if seq == run[2] + 1 and prev == run[3]:
                run[2], run[3] = seq, digest
                continue
            if seq <= run[2]:
                return None
            runs[wid].append((run[0], run[1], run[2], run[3]))
            closed += 1
            if closed > _MAX_RUNS + count // 64:  # not a writer's files: walk them in order
                return None
        else:
            runs.setdefault(wid, [])
        open_runs[(filename, wid)] = [seq, prev, seq, digest]
    for (_, wid), run in open_runs.items():
        runs[wid].append((run[0], run[1], run[2], run[3]))
    return _Pass(count, runs, at_head)


def _joined(
    table: str, passes: list[_Pass], root: Path, heads: dict[str, dict[str, Head]]
) -> tuple[int, set[str]] | None:
    """`(rows, writers)` if each writer's runs, from every pass, join into its chain from
    its anchor through the row its head names; else None."""
    runs: dict[str, list[_Run]] = {}
    at_head: dict[str, str] = {}
    for found in passes:
        for wid, chain in found.runs.items():
            runs.setdefault(wid, []).extend(chain)
        at_head.update(found.at_head)
    for wid, chain in runs.items():
        expect_seq, expect_prev = _anchor(root, table, wid)
        for first, prev, last, digest in sorted(chain):
            if first != expect_seq or prev != expect_prev:
                return None
            expect_seq, expect_prev = last + 1, digest
        head_seq, head_hash = heads.get(wid, {}).get(table, (None, None))
        if head_seq is not None and (
            expect_seq - 1 < head_seq or (head_hash is not None and at_head.get(wid) != head_hash)
        ):
            return None
    return sum(found.rows for found in passes), set(runs)


def _groups(files: list[Path], count: int) -> list[list[Path]]:
    """`files` in up to `count` groups of about equal size, one per `_PARALLEL_BYTES` at
    least (the first for this process; largest files first, each to the smallest group)."""
    sizes = {}
    for path in files:
        try:
            sizes[path] = path.stat().st_size
        except OSError:  # gone: its group's read lists the files again
            sizes[path] = 0
    count = max(1, min(count, sum(sizes.values()) // _PARALLEL_BYTES, len(files)))
    groups: list[list[Path]] = [[] for _ in range(count)]
    totals = [0] * count
    for path in sorted(files, key=lambda f: -sizes[f]):
        smallest = totals.index(min(totals))
        groups[smallest].append(path)
        totals[smallest] += sizes[path]
    return [group for group in groups if group]


_LISTED_AGAIN: Final = "listed again"  # a worker's files went while it read them


def _pass_over(
    table: str, files: list[Path], root: Path, head_seqs: dict[str, int], sets: dict[str, int]
) -> _Pass | str | None:
    """`_pass` over segments `files` on a connection of its own (in a worker process)."""
    import duckdb

    con = connect()
    try:
        return _read_pass(con, table, files, root, head_seqs, sets)
    except (FileNotFoundError, duckdb.IOException, duckdb.InvalidInputException):
        return _LISTED_AGAIN
    finally:
        con.close()


def _worker_main() -> None:
    """A worker (`_Workers`): the arguments of `_pass_over`, pickled, on stdin; what it
    returns, pickled, on stdout."""
    import pickle

    args = pickle.loads(sys.stdin.buffer.read())  # noqa: S301 - from the verifying process
    sys.stdout.buffer.write(pickle.dumps(_pass_over(*args)))


class _Worker:
    """One group of files read by another process; `result()` waits for what it found,
    and reads the group here if the process failed."""

    def __init__(self, proc: Any, args: tuple[Any, ...]) -> None:
        self.proc, self.args = proc, args

    def result(self) -> _Pass | str | None:
        import pickle

        try:
            out = self.proc.stdout.read()
            if self.proc.wait() == 0:
                found: _Pass | str | None = pickle.loads(out)  # noqa: S301 - our own child
                return found
        except Exception:  # noqa: S110 - read here instead
            pass
        return _pass_over(*self.args)

    def cancel(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        if self.proc.stdout is not None:
            self.proc.stdout.close()


class _Workers:
    """Processes to read groups of a large table's files (`_sound_chains`), as many as
    this process may use cores. Each is a fresh interpreter (`python -c`), not a fork
    (the caller may be a server with threads, an audit writer's among them) nor a
    multiprocessing spawn (which imports the caller's main module again: a script
    without a main guard would run twice)."""

    def __init__(self) -> None:
        try:
            cores = len(os.sched_getaffinity(0))
        except (AttributeError, OSError):  # (not Linux)
            cores = os.cpu_count() or 1
        self.count = min(cores, _MAX_WORKERS)

    def submit(
        self, table: str, groups: list[list[Path]], root: Path, head_seqs: dict[str, int],
        sets: dict[str, int],
    ) -> list[_Worker]:  # fmt: skip
        """A worker per group; none if the processes could not be started."""
        import pickle
        import subprocess

        env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
        started: list[_Worker] = []
        try:
            for group in groups:
                args = (table, group, root, head_seqs, sets)
                proc = subprocess.Popen(  # noqa: S603 - this interpreter, our own code
                    [sys.executable, "-c", _WORKER],
                    stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                    env=env,
                )  # fmt: skip
                started.append(_Worker(proc, args))
                assert proc.stdin is not None
                proc.stdin.write(pickle.dumps(args))
                proc.stdin.close()
        except Exception:  # no interpreter to start (embedded), no process left, ...
            for worker in started:
                worker.cancel()
            return []
        return started


_WORKER: Final = "from guard.audit.verify import _worker_main; _worker_main()"


def _check_rows(
    table: str,
    rows: Iterable[tuple[Any, ...]],
    root: Path,
    report: VerifyReport,
    seen: set[str],
    heads: dict[str, dict[str, Head]],
    sets: dict[str, int],
) -> None:
    """Each writer's rows, in seq order, against its chain. `heads` is the writers' head
    files as read before any row was: a live writer's head can only lag the rows read
    after it (it is written after its rows), never run ahead of them. A listing naming an
    item set must name one of `sets` (the sound ones, with their sizes), with a time per
    item."""
    width = len(TABLES[table])
    wid_at, seq_at = width - 4, width - 3
    current: str | None = None
    expect_seq, expect_prev, last_seq = 1, GENESIS, 0
    anchor_seq, anchor_prev = 1, GENESIS
    head_seq, head_hash = None, None  # where the writer's head says the chain ends
    # the last row before the retention cut: (seq, hash, decision id, file, row number)
    before: tuple[int, str, Any, Any, Any] | None = None
    unsound: set[Any] = set()  # item sets named and found missing or edited

    def close_before() -> None:
        # Rows older than the cut are left only by a retention interrupted before it
        # replaced their segments: they must then still lead, unbroken, to the cut.
        nonlocal before
        if before is not None and (before[0] != anchor_seq - 1 or before[1] != anchor_prev):
            report.problems.append(
                Problem(table, str(current), before[0],
                        "row before the retention cut that does not lead to it: inserted",
                        before[2], before[3], before[4])
            )  # fmt: skip
        before = None

    def close_chain() -> None:
        close_before()
        if current is not None and head_seq is not None and last_seq < head_seq:
            report.problems.append(
                Problem(
                    table,
                    current,
                    last_seq + 1,
                    f"rows {last_seq + 1}..{head_seq} missing: the chain was truncated "
                    f"(writer head says seq {head_seq})",
                )
            )

    for row in rows:
        values = list(row[:width])
        filename, rownum = row[width], row[width + 1]
        wid, seq = values[wid_at], values[seq_at]
        if not _is_chained(wid, seq):  # (a segment of other types: `_check_types`)
            report.problems.append(
                Problem(table, str(wid), None, "no writer_id or seq: unreadable row",
                        values[0], filename, rownum)
            )  # fmt: skip
            continue
        if wid != current:
            close_chain()
            current = wid
            seen.add(wid)
            report.chains += 1
            anchor_seq, anchor_prev = expect_seq, expect_prev = _anchor(root, table, wid)
            head_seq, head_hash = heads.get(wid, {}).get(table, (None, None))
            last_seq = expect_seq - 1
        report.rows += 1

        def bad(message: str, _s: int = seq) -> None:
            report.problems.append(
                Problem(table, wid, _s, message, values[0], filename, rownum)  # noqa: B023
            )

        if table == "listings" and values[_SET_AT] is not None:
            size = sets.get(str(values[_SET_AT]))
            if size is None and values[_SET_AT] not in unsound:
                # filed since the sets were listed (writers keep writing)?
                size = _filed_since(root, str(values[_SET_AT]), sets)
                if size is None:
                    unsound.add(values[_SET_AT])
            evals = values[_SET_AT + 1]
            if size is None:
                bad(f"names item set {str(values[_SET_AT])[:12]}, which is missing or edited: "
                    "its items are lost")  # fmt: skip
            elif not isinstance(evals, list) or len(evals) != size:
                bad("its item times do not match its item set's items")
        stored_hash = values[-1]
        if seq < anchor_seq:
            if chain_hash(table, values[:-1]) != stored_hash:
                bad("content does not match its hash: the row was edited")
            elif before is not None and (seq != before[0] + 1 or values[-2] != before[1]):
                bad("row before the retention cut that does not follow the one before it")
            before = (seq, stored_hash, values[0], filename, rownum)
            continue
        close_before()
        if seq < expect_seq:
            bad("duplicate seq: a row was inserted or copied")
            continue
        if seq > expect_seq:
            bad(f"rows {expect_seq}..{seq - 1} missing: deleted from the chain")
        if values[-2] != expect_prev and seq == expect_seq:
            bad("prev_hash does not match the previous row: rows reordered or replaced")
        elif chain_hash(table, values[:-1]) != stored_hash:
            bad("content does not match its hash: the row was edited")
        if seq == head_seq and head_hash is not None and stored_hash != head_hash:
            # each row may match its hash and link to the one before: all written again
            bad("not the hash the writer's head recorded for this row: it, or rows before "
                "it, were rewritten and chained again")  # fmt: skip
        expect_seq, expect_prev, last_seq = seq + 1, stored_hash, seq
    close_chain()


def cut_problem(
    con: Any, root: Path, table: str, files: list[Path], wid: str, first: int
) -> str | None:
    """Why retention must not delete the rows of writer `wid`'s chain in `table` before seq
    `first` (in the segments `files`), or None if it may. Retention picks rows by their
    `ts`, and `verify` checks only the rows left: a row back-dated (its hash broken), or
    back-dated and chained again, would be deleted behind an anchor that verifies. So each
    row deleted must match its hash and follow the one before it, the one the writer's head
    names must be the one it recorded, and the last must lead to the first row kept."""
    heads = _head_chains(read_json_file(root / "writers" / f"{wid}.json")) or {}
    head_seq, head_hash = heads.get(table, (None, None))
    width = len(TABLES[table])
    last: tuple[int, str] | None = None  # (seq, hash) of the row before
    query = f"SELECT * FROM ({_select(table, files)}) WHERE writer_id = ? AND seq < ? ORDER BY seq"  # noqa: S608
    for row in _fetch(con.execute(query, [wid, first])):
        values = row[:width]
        seq, prev, digest = values[-3], values[-2], values[-1]
        if chain_hash(table, values[:-1]) != digest:
            return f"seq {seq}, which it would delete, does not match its hash (edited)"
        if last is not None and (seq != last[0] + 1 or prev != last[1]):
            return f"seq {seq}, which it would delete, does not follow the row before it"
        if seq == head_seq and head_hash is not None and digest != head_hash:
            return (
                f"seq {seq}, which it would delete, is not the row the writer's head "
                "recorded (it, or rows before it, were chained again)"
            )
        last = (seq, digest)
    if last is None:
        return None
    if last[0] != first - 1:
        return f"rows {last[0] + 1}..{first - 1}, up to the cut, are missing"
    kept = _prev_hashes(con, root, table, wid, first)
    if kept and kept != {last[1]}:
        return (
            f"seq {last[0]}, the last it would delete, does not lead to seq {first}, which "
            "stays (rows before it were edited and chained again)"
        )
    return None


def _prev_hashes(con: Any, root: Path, table: str, wid: str, seq: int) -> set[str]:
    """The `prev_hash` of writer `wid`'s row `seq` in `table` (in a segment or a hot file;
    more than one if rows were copied), listed again if a file goes meanwhile."""
    import duckdb

    for attempt in range(_RESCANS):
        files, hot = scan_segments(root / table)
        columns = "SELECT writer_id, seq, prev_hash FROM"
        parts = (
            [f"{columns} read_parquet([{sql_paths(files)}], union_by_name=true)"] if files else []
        )
        if hot:
            parts.append(f"{columns} ({json_select(table, hot, hot=True)})")
        if not parts:
            return set()
        try:
            rows = con.execute(
                f"SELECT DISTINCT prev_hash FROM ({' UNION ALL '.join(parts)}) "  # noqa: S608
                "WHERE writer_id = ? AND seq = ?",
                [wid, seq],
            ).fetchall()
        except (FileNotFoundError, duckdb.IOException, duckdb.InvalidInputException):
            if attempt < _RESCANS - 1:
                time.sleep(min(0.05 * attempt, 0.5))
                continue
            raise
        return {str(prev) for (prev,) in rows}
    raise AssertionError("unreachable")


def _check_types(con: Any, table: str, files: list[Path], report: VerifyReport) -> list[Path]:
    """Each segment's columns must have the schema's types. The chains are checked on
    values as `_select` reads them (`epoch_us(ts)` is the same number for TIMESTAMP and
    TIMESTAMPTZ), readers on the columns as stored: a segment rewritten with another type
    (a naive timestamp, shifted by each reader's time zone) would show readers other
    values than the ones checked. Returns the segments whose rows `_select` can read: not
    one with a column of the name of those it adds (DuckDB refuses to read it so, and
    would leave every other segment unchecked)."""
    expected = _schema_types(con, TABLES[table])
    first = _schema_types(con, first_columns(table))  # segments older than ADDED_COLUMNS
    readable = []
    for path in files:
        listed = sql_paths([path])
        stored = con.execute(f"DESCRIBE SELECT * FROM read_parquet({listed})").fetchall()  # noqa: S608
        wrong = sorted(
            f"{name} is {typ}" + (f", not {expected[name]}" if name in expected else " (unknown)")
            for name, typ, *_ in stored
            if typ not in (expected.get(name), first.get(name))
        )
        clash = any(name in _ADDED_BY_SELECT for name, *_ in stored)
        if wrong:
            report.problems.append(
                Problem(table, "-", None,
                        f"segment columns differ from the schema: {'; '.join(wrong)}: rewritten"
                        + (" (its rows cannot be read to be checked)" if clash else ""),
                        None, str(path))
            )  # fmt: skip
        if not clash:
            readable.append(path)
    return readable


def _schema_types(con: Any, schema: tuple[tuple[str, str], ...]) -> dict[str, str]:
    """The column types of `schema` as DuckDB names them."""
    columns = ", ".join(f"CAST(NULL AS {typ}) AS {name}" for name, typ in schema)
    return {row[0]: row[1] for row in con.execute(f"DESCRIBE SELECT {columns}").fetchall()}


def _check_physical_order(con: Any, table: str, files: list[Path], report: VerifyReport) -> None:
    listed = sql_paths(files)
    rows = con.execute(
        "SELECT writer_id, seq, decision_id, filename, file_row_number FROM ("  # noqa: S608
        "SELECT *, lag(seq) OVER (PARTITION BY filename, writer_id ORDER BY file_row_number) "
        f"AS prev_seq FROM read_parquet([{listed}], union_by_name=true, filename=true, "
        "file_row_number=true)) WHERE seq < prev_seq ORDER BY filename, file_row_number"
    ).fetchall()
    for wid, seq, did, filename, rownum in rows:
        report.problems.append(
            Problem(
                table,
                wid,
                seq,
                "row out of order in its segment: rows were reordered",
                did,
                filename,
                rownum,
            )
        )
