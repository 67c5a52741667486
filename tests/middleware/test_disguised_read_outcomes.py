"""A disguised read (`users://%61dmin/payroll`) is decided twice, on the template that runs
and on what the URI it reaches names (`test_disguised_read_runs_another_template.py`):
both decisions allowed the one read, and both records get its outcome. Found in review:
only the second did; the first, allowed and without an outcome, read as a request still
running, or cut short by a crash (see `CancelledBeforeRun`)."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastmcp import Client
from mcp.shared.exceptions import MCPError
from mw_support import USERS_ALLOWED, disguise_server, outcomes

from guard import GuardMiddleware, Principal
from guard.audit import AuditLog

ALICE = Principal("alice", roles=("user",), auth_method="test")

POLICY = USERS_ALLOWED


async def test_both_allowed_decisions_of_a_disguised_read_have_its_outcome(
    tmp_path: Path,
) -> None:
    mcp = disguise_server()

    store = tmp_path / "audit"
    mw = GuardMiddleware(POLICY, principal=ALICE, audit=AuditLog(store), telemetry=False)
    mcp.add_middleware(mw)
    async with Client(mcp) as client:
        assert (await client.read_resource("users://%61dmin/payroll"))[0].text == (
            "PAYROLL OF admin"
        )
    mw.close()
    # what the URI names (decided first), then the template that ran: one read, both ran it
    assert outcomes(store, "resources/read") == [
        ("admin_docs", True, "ok", None),
        ("payroll", True, "ok", None),
    ]


async def test_an_allowed_decision_of_a_disguised_read_another_denies_says_it_did_not_run(
    tmp_path: Path,
) -> None:
    """The disguise's own shape: what the URI names is allowed, the template that would run
    is not. The read is denied; the allowed record's outcome says the read did not run."""
    mcp = disguise_server()

    docs_only = POLICY.replace('actions: ["*"]', "resource_templates: {names: [admin_docs]}")
    store = tmp_path / "audit"
    mw = GuardMiddleware(docs_only, principal=ALICE, audit=AuditLog(store), telemetry=False)
    mcp.add_middleware(mw)
    async with Client(mcp) as client:
        with pytest.raises(MCPError, match="Resource not found"):
            await client.read_resource("users://%61dmin/payroll")
    mw.close()
    assert outcomes(store, "resources/read") == [
        ("admin_docs", True, "error", "DeniedByAnother"),
        ("payroll", False, None, None),
    ]
