"""FastMCP asks middleware `check_resource_access` whether a caller may read each file of
a skill before advertising it (`skills/list`, `skills/get`), and expects
`AuthorizationError` for "no". A denied skill is left out; the allowed ones stay."""

from __future__ import annotations

from typing import Any

from fastmcp import Client, FastMCP
from fastmcp.skills import Skill
from fastmcp.skills.client import SkillsClientExtension
from fastmcp.skills.provider import SkillCatalogProvider
from mw_support import Recorder

from guard import GuardMiddleware, Principal

ALICE = Principal("alice", roles=("user",), auth_method="test")

POLICY = """
name: p
default_effect: deny
rules:
  - name: public_skills
    effect: allow
    resources: {patterns: ["skill://code-review/*"]}
    actions: [list, read]
"""


async def test_a_denied_skill_is_left_out_and_the_allowed_ones_are_still_listed(
    recorder: Recorder,
) -> None:
    mcp: FastMCP[Any] = FastMCP("skills")
    review = Skill(name="code-review", description="Review a PR.", instructions="# Review")
    payroll = Skill(name="hr-payroll", description="Payroll.", instructions="# Payroll")
    mcp.add_provider(SkillCatalogProvider([review, payroll]))
    mcp.add_middleware(GuardMiddleware(POLICY, principal=ALICE, audit=None, telemetry=recorder))
    async with Client(mcp, extensions=[SkillsClientExtension()]) as client:
        listed = [str(r.uri) for r in await client.list_resources()]
        assert listed == ["skill://code-review/SKILL.md", "skill://code-review/_manifest"]
        skills = await client.list_skills()
        # found in review: [] (the guard's NotFoundError failed the whole Skills source;
        # FastMCP logged "Error loading Skills source")
        assert [s.uri for s in skills] == ["skill://code-review/SKILL.md"]
