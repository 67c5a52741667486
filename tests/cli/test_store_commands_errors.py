"""Review findings: the store commands."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from guard.audit import AuditLog
from guard.cli import main
from guard.events import DecisionEvent
from guard.policy import AccessRequest, Principal, Resource, load_policies


def _store(path: Path) -> Path:
    policies = load_policies({"name": "p", "rules": [{"name": "r", "effect": "allow"}]})
    log = AuditLog(path)
    request = AccessRequest(Principal("alice", ("user",)), Resource("tool", "t"), "call")
    log.append(DecisionEvent("d0", request, policies.decide(request), method="tools/call"))
    log.close()
    return path


def _corrupt(store: Path) -> None:
    (segment,) = (store / "decisions").glob("*.parquet")
    segment.write_bytes(b"garbage")


def no_traceback(result: Result) -> None:
    assert result.exception is None or isinstance(result.exception, SystemExit), (
        f"traceback: {result.exception!r}"
    )


@pytest.mark.parametrize("command", [["tail"], ["retention", "--days", "1"]])
def test_unreadable_segment_is_a_clear_error(tmp_path: Path, command: list[str]) -> None:
    """`verify` reports such a store as UNREADABLE; `tail` and `retention` crash with a
    DuckDB traceback."""
    store = _store(tmp_path / "s")
    _corrupt(store)
    assert CliRunner().invoke(main, ["verify", str(store)]).exit_code == 1
    result = CliRunner().invoke(main, [*command, str(store)])
    no_traceback(result)
    assert result.exit_code == 1


def test_compacting_an_unreadable_segment_is_a_clear_error(tmp_path: Path) -> None:
    """`compact` merges the segments of two writers, one of them damaged: it crashed with
    a DuckDB traceback, and its store stays as it was."""
    store = _store(_store(tmp_path / "s"))
    first = sorted((store / "decisions").glob("*.parquet"))[0]
    first.write_bytes(b"garbage")
    result = CliRunner().invoke(main, ["compact", str(store)])
    no_traceback(result)
    assert result.exit_code == 1
    assert "unreadable store" in result.output
    assert len(list((store / "decisions").glob("*.parquet"))) == 2


def test_default_store_follows_mcp_guard_audit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`verify --help`: "STORE defaults to ./mcp-guard-audit.duckdb (the guard's default)".
    The guard's default is `$MCP_GUARD_AUDIT` when set (README); a server started with it
    writes there, and `mcp-guard verify` in the same environment looks elsewhere."""
    store = _store(tmp_path / "records")
    monkeypatch.setenv("MCP_GUARD_AUDIT", str(store))
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(main, ["verify"])
    assert result.exit_code == 0, result.output
