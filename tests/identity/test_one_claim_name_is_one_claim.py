"""One string where claim names are expected is one claim, as `ClaimMapping(keep=...)`
already took it: `JWTAuthenticator(required_claims="tenant")` required the claims "t",
"e", "n", "a" (every token refused, at the first request), `claims="email"` kept letters
instead of the email, and `AuditLog(claims="team")` recorded `team` as redacted."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from fastmcp import Client, FastMCP
from identity_kit import HS_SECRET, bearer, claims, mint

from guard import GuardMiddleware, Principal
from guard.audit import AuditLog, open_store
from guard.errors import AuthenticationError
from guard.identity import JWTAuthenticator


async def test_one_required_claim_is_required() -> None:
    auth = JWTAuthenticator(HS_SECRET, required_claims="tenant")
    ok = await auth.authenticate(bearer(mint(claims(tenant="acme"))))
    assert ok.claims["tenant"] == "acme"  # required claims are kept too
    with pytest.raises(AuthenticationError) as caught:
        await auth.authenticate(bearer(mint(claims())))
    assert caught.value.reason == "missing_claim"


async def test_one_kept_claim_is_kept() -> None:
    auth = JWTAuthenticator(HS_SECRET, claims="email")
    p = await auth.authenticate(bearer(mint(claims(email="a@example.com"))))
    assert dict(p.claims) == {"email": "a@example.com"}


@pytest.mark.parametrize("option", ["claims", "required_claims"])
def test_claim_names_that_are_not_strings_are_refused(option: str) -> None:
    with pytest.raises(TypeError, match=option):
        JWTAuthenticator(HS_SECRET, **{option: [1]})


async def test_one_recorded_claim_is_recorded(tmp_path: Path) -> None:
    mcp: FastMCP[Any] = FastMCP("one-claim")

    @mcp.tool
    def report() -> str:
        return "report"

    carol = Principal("carol", ("user",), claims={"team": "x"})
    guard = GuardMiddleware(
        "name: p\ndefault_effect: allow\nrules: []\n",
        principal=carol,
        audit=AuditLog(tmp_path / "s", claims="team"),
        telemetry=False,
    )
    mcp.add_middleware(guard)
    async with Client(mcp) as client:
        await client.call_tool("report", {})
    guard.close()
    with open_store(tmp_path / "s") as con:
        (recorded,) = con.execute("select claims from decisions").fetchone() or ("",)
    assert json.loads(recorded) == {"team": "x"}
