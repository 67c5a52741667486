"""`mcpguard_decision_duration_seconds` is "Time spent deciding one request", yet a
request refused before deciding (authentication failed) is observed as 0 s. A burst of
unauthenticated calls (what MCPGuardAuthFailureBurst is about) drags every percentile of
the latency panel and the MCPGuardDecisionLatencyHigh alert towards zero: p99 of a real
regression is hidden behind the zeros."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from fastmcp import Client
from fastmcp.exceptions import ToolError
from prometheus_client import CollectorRegistry

from guard import create_api_key_middleware
from guard.telemetry import GuardTelemetry

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "middleware"))
from mw_support import POLICY, demo_server


async def test_a_refused_caller_is_not_observed_as_a_zero_second_decision() -> None:
    registry = CollectorRegistry()
    mcp = demo_server()
    mw = create_api_key_middleware(
        POLICY, api_key_roles={"user-key": {"user_id": "u", "roles": ["user"]}},
        audit=None, telemetry=GuardTelemetry(registry=registry),
    )  # fmt: skip
    mcp.add_middleware(mw)
    async with Client(mcp) as client:  # in memory: no X-API-Key header
        for _ in range(5):
            with pytest.raises(ToolError):
                await client.call_tool("echo", {"text": "x"})
    mw.close()
    sample = registry.get_sample_value
    failures = sample("mcpguard_auth_failures_total",
                      {"method": "api_key", "reason": "missing_credentials"})  # fmt: skip
    assert failures == 5.0
    # nothing was decided, so nothing belongs in "time spent deciding"
    assert sample("mcpguard_decision_duration_seconds_count") == 0.0, (
        sample("mcpguard_decision_duration_seconds_count"),
        sample("mcpguard_decision_duration_seconds_sum"),
    )
