"""An agent id declared in `X-Agent-Id` is the caller's text: the API key, JWT and no-auth
authenticators take it when nothing they verified names an agent. It reached the record
(`agent_id`) and the guard's span (`gen_ai.agent.id`) verbatim and unbounded, a credential
sent there included, where the session and request ids, just as client-chosen, are
bounded and redacted."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastmcp import FastMCP
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client import CollectorRegistry
from servers import raw_tool_call, serving_in_thread

from guard import GuardMiddleware
from guard.audit import AuditLog, open_store
from guard.identity import ApiKeyAuthenticator, ChainAuthenticator, NoAuthenticator
from guard.telemetry import GuardTelemetry

KEY = "agent-test-api-key-0001"
SECRET = "sk-live-DECLAREDabcdefghijklmnop1234"


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[str, GuardMiddleware]]:
    mcp = FastMCP("agents")

    @mcp.tool
    def echo(text: str) -> str:
        return text

    mw = GuardMiddleware(
        {"name": "p", "rules": [{"name": "r", "effect": "allow", "tools": {"names": ["echo"]}}]},
        authenticator=ChainAuthenticator(
            [ApiKeyAuthenticator({KEY: {"user_id": "ci", "roles": ["user"]}}), NoAuthenticator()]
        ),
        audit=AuditLog(tmp_path / "store"),
        telemetry=GuardTelemetry(registry=CollectorRegistry()),
    )
    mcp.add_middleware(mw)
    with serving_in_thread(mcp.http_app()) as port:
        yield f"http://127.0.0.1:{port}/mcp", mw
    mw.close()


def test_a_declared_agent_id_is_recorded_and_traced_bounded_and_secret_free(
    served: tuple[str, GuardMiddleware], spans: InMemorySpanExporter, tmp_path: Path
) -> None:
    url, mw = served
    for headers in (
        {"x-agent-id": SECRET},  # anyone, through NoAuthenticator
        {"x-api-key": KEY, "x-agent-id": SECRET},  # a key holder's declared agent
        {"x-agent-id": "a" * 5000},
        {"x-agent-id": "claude-desktop-1.2"},  # an ordinary agent id stays as it is
    ):
        response = raw_tool_call(url, "echo", headers)
        assert response.status_code == 200, response.text
    ours = [dict(s.attributes or {}) for s in spans.get_finished_spans()]
    agents = [a.get("gen_ai.agent.id") for a in ours if "mcp_guard.decision" in a]
    assert len(agents) == 4 and agents[3] == "claude-desktop-1.2", agents
    assert SECRET not in repr(agents) and all(len(str(a)) <= 256 for a in agents), agents
    assert mw.audit is not None and mw.audit.flush()
    for path in (tmp_path / "store").rglob("*"):
        if path.is_file():
            assert SECRET.encode() not in path.read_bytes(), path
    recorded = open_store(tmp_path / "store").sql("SELECT agent_id FROM decisions").fetchall()
    assert len(recorded) == 4 and all(len(a or "") <= 256 for (a,) in recorded), recorded
    assert ("claude-desktop-1.2",) in recorded
