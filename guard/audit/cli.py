"""`mcp-guard verify | compact | retention | tail`: the decision store from the shell."""

from __future__ import annotations

import json
from pathlib import Path

import click

from guard.audit.log import DEFAULT_PATH, OFF, env_store
from guard.audit.schema import TABLES
from guard.errors import AuditError

__all__ = ["COMMANDS"]


def _default_store() -> str:
    """Where the guard writes by default: `$MCP_GUARD_AUDIT` (unless `off`), else
    ./mcp-guard-audit.duckdb."""
    env = env_store()
    return DEFAULT_PATH if env in (None, OFF) else env


_STORE = click.argument("store", type=click.Path(path_type=Path), default=_default_store)


@click.command("verify")
@_STORE
@click.option("--all", "show_all", is_flag=True, help="List every problem, not only the first.")
@click.option(
    "--memory-limit",
    metavar="SIZE",
    help="What DuckDB may hold, e.g. 4GB (verifying in this process only). A sound store is "
    "read in one pass, in tens of MB; one with a broken chain is sorted into chain order to "
    "name the first bad row (~1.1 GB per million rows; past the limit, on disk under "
    "$TMPDIR). Default: DuckDB's, 80% of the machine's memory, in each process that "
    "verifies (one per core).",
)
def verify_command(store: Path, show_all: bool, memory_limit: str | None) -> None:
    """Check every writer's hash chain in STORE; exit 1 naming the first bad row.

    STORE defaults to the guard's default: $MCP_GUARD_AUDIT, else ./mcp-guard-audit.duckdb.

    \b
    Example:
        mcp-guard verify
        mcp-guard verify mcp-guard-audit.duckdb --all
    """
    import duckdb

    from guard.audit.verify import MemoryLimitError, verify

    _require(store)
    try:
        report = verify(store, memory_limit=memory_limit)
    except MemoryLimitError as exc:
        raise click.BadParameter(str(exc), param_hint="'--memory-limit'") from None
    except duckdb.OutOfMemoryException as exc:
        limit = f"--memory-limit {memory_limit}" if memory_limit else "DuckDB's memory limit"
        click.echo(
            f"OUT OF MEMORY: reading the rows (and sorting them into chain order, when a "
            f"chain is broken) needed more than {limit} allows ({str(exc).splitlines()[0]})",
            err=True,
        )
        raise SystemExit(1) from None
    except (duckdb.Error, OSError, ValueError) as exc:  # a segment that cannot be read
        click.echo(f"UNREADABLE: {str(exc).splitlines()[0]}", err=True)
        raise SystemExit(1) from None
    for cut in report.cuts:  # trusted like the heads: compare with a copy kept elsewhere
        click.echo(f"retention cut: {cut}")
    if report.unfiled:
        click.echo(
            f"note: decisions name {len(report.unfiled)} policy set(s) whose texts were never "
            f"filed ({', '.join(h[:12] for h in report.unfiled)}): not replayable "
            "(recorded without AuditLog.record_policies)"
        )
    if report.ok:
        click.echo(f"ok: {report.rows} rows in {report.chains} chains verified")
        return
    click.echo(f"TAMPERED: {len(report.problems)} problem(s); first bad row:", err=True)
    for problem in report.problems if show_all else report.problems[:1]:
        click.echo(f"  {problem}", err=True)
    raise SystemExit(1)


@click.command("compact")
@_STORE
def compact_command(store: Path) -> None:
    """Merge STORE's small segments into files of up to 128 MB of data (~400,000 records;
    files that big are left alone; safe while servers write), then delete the item sets
    no row names any more (once unclaimed by every writer for a day), as `retention` does.

    Hot files left by writers that died (held open by no writer, untouched for 10
    minutes) are converted first; their rows were readable all along. Temporary files
    (`.<name>….tmp`) left by processes that died before renaming them go once untouched
    for 10 minutes.

    STORE defaults to the guard's default: $MCP_GUARD_AUDIT, else ./mcp-guard-audit.duckdb.

    \b
    Example:
        mcp-guard compact
        mcp-guard compact mcp-guard-audit.duckdb
    """
    import duckdb

    from guard.audit.maintenance import compact

    _require(store)
    try:
        merged = compact(store)
    except AuditError as exc:  # (a hot file of a newer version's: said, not converted)
        raise click.ClickException(str(exc)) from None
    except (duckdb.Error, OSError) as exc:
        raise _unreadable(exc) from None
    removed = merged.pop("itemsets", 0)
    for table, files in merged.items():
        click.echo(
            f"{table}: {files} segment(s) merged" if files > 1 else f"{table}: nothing to do"
        )
    click.echo(_swept(removed))


@click.command("retention")
@_STORE
@click.option("--days", type=click.FloatRange(min=0, min_open=True), default=180.0,
              show_default=True, help="Keep rows younger than this.")  # fmt: skip
def retention_command(store: Path, days: float) -> None:
    """Delete rows older than --days from STORE (the chains stay verifiable), then the
    item sets no row names any more (once unclaimed by every writer for a day).

    STORE defaults to the guard's default: $MCP_GUARD_AUDIT, else ./mcp-guard-audit.duckdb.

    \b
    Example:
        mcp-guard retention --days 90
    """
    import duckdb

    from guard.audit.maintenance import apply_retention

    _require(store)
    try:
        dropped = apply_retention(store, days=days)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--days") from None
    except AuditError as exc:
        raise click.ClickException(str(exc)) from None
    except (duckdb.Error, OSError) as exc:
        raise _unreadable(exc) from None
    removed = dropped.pop("itemsets", 0)
    for table, rows in dropped.items():
        click.echo(f"{table}: {rows} row(s) older than {days:g} days deleted")
    click.echo(_swept(removed))


@click.command("tail")
@_STORE
@click.option("-n", "limit", type=click.IntRange(min=1), default=20, show_default=True,
              help="How many decisions to print.")  # fmt: skip
def tail_command(store: Path, limit: int) -> None:
    """Print the latest decisions of STORE as JSON lines, oldest first (times in UTC).

    STORE defaults to the guard's default: $MCP_GUARD_AUDIT, else ./mcp-guard-audit.duckdb.

    \b
    Example:
        mcp-guard tail -n 5
        mcp-guard tail mcp-guard-audit.duckdb -n 100 | grep '"allowed": false'
    """
    import duckdb

    from guard.audit.store import open_store

    _require(store)
    try:
        with open_store(store) as con:
            cur = con.execute(
                # in UTC, as recorded: ts::VARCHAR shows the machine's zone, so the same
                # store tailed on two machines printed two different times
                "SELECT decision_id, strftime(ts AT TIME ZONE 'UTC', '%Y-%m-%dT%H:%M:%S.%fZ') "
                "AS ts, method, resource, user_id, allowed, "
                "reason, rule, policy, status, error_class FROM decision_log "
                # a listing's records share ts, writer and seq: its items' positions (the
                # `.N` of their ids, as numbers: `.10` after `.9`) keep the listing's order
                "ORDER BY ts DESC, writer_id DESC, seq DESC, "
                r"TRY_CAST(regexp_extract(decision_id, '\.(\d+)$', 1) AS BIGINT) DESC "
                "LIMIT ?",
                [limit],
            )
            names = [d[0] for d in cur.description]
            rows = cur.fetchall()
    except (duckdb.Error, OSError) as exc:
        raise _unreadable(exc) from None
    for row in reversed(rows):
        click.echo(json.dumps(dict(zip(names, row, strict=True))))


def _swept(removed: int) -> str:
    """The line `compact` and `retention` end with: the item sets they deleted."""
    return f"itemsets: {removed} item set(s) no row names any more deleted"


def _unreadable(exc: Exception) -> click.ClickException:
    """A store that cannot be read (a damaged segment): said in one line, not a traceback
    (`mcp-guard verify` names the file)."""
    return click.ClickException(f"unreadable store: {str(exc).splitlines()[0]}")


def _require(store: Path) -> None:
    # a writer makes these at once: any other directory (a typo'd path, /etc) is no store,
    # and verifying it would say "ok: 0 rows", or maintenance would leave its lock there
    if not store.is_dir() or not any((store / part).is_dir() for part in (*TABLES, "writers")):
        raise click.ClickException(f"no MCP Guard store at {store} (a directory of segments)")


COMMANDS = [verify_command, compact_command, retention_command, tail_command]
