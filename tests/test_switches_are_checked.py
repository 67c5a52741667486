"""Every on/off setting takes `True` or `False` only, and says which one it refused.

A switch read from configuration text is a string: `"no"` and `"false"` are truthy, `""`
is falsy. `require_exp=""` stopped requiring expiry on tokens, `detect_secrets=""` let
credential-shaped values into the records, `record_principal="no"` put identities on spans.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from guard import GuardMiddleware, create_api_key_middleware, create_jwt_middleware
from guard.audit import AuditLog
from guard.audit.redact import Redactor
from guard.identity import ApiKeyAuthenticator, FastMCPTokenAuthenticator, JWTAuthenticator
from guard.telemetry import GuardTelemetry, configure

SECRET = "switch-test-secret-of-32-bytes-00"
KEYS = {"switch-test-key-0001": ["user"]}

BUILDERS: dict[str, Callable[[Path, Any], object]] = {
    "durable": lambda tmp, v: AuditLog(tmp / "store", durable=v),
    "require_exp": lambda tmp, v: JWTAuthenticator(secret=SECRET, require_exp=v),
    "accept_bearer": lambda tmp, v: ApiKeyAuthenticator(KEYS, accept_bearer=v),
    "include_scopes": lambda tmp, v: FastMCPTokenAuthenticator(include_scopes=v),
    "detect_secrets": lambda tmp, v: Redactor(detect_secrets=v),
    "record_principal": lambda tmp, v: GuardTelemetry(
        registry=CollectorRegistry(), record_principal=v
    ),
    "list_events": lambda tmp, v: GuardTelemetry(registry=CollectorRegistry(), list_events=v),
    "set_global": lambda tmp, v: configure(service_name="x", set_global=v),
    "batch": lambda tmp, v: configure(service_name="x", set_global=False, batch=v),
    "logs": lambda tmp, v: configure(service_name="x", set_global=False, logs=v),
    "refuse_unknown_tasks": lambda tmp, v: GuardMiddleware(
        "rules: []", audit=None, telemetry=False, refuse_unknown_tasks=v
    ),
}


@pytest.mark.parametrize("value", ["no", "", 1, None])
@pytest.mark.parametrize("name", sorted(BUILDERS))
def test_a_switch_that_is_not_a_bool_is_refused(tmp_path: Path, name: str, value: object) -> None:
    with pytest.raises(TypeError, match=name):
        BUILDERS[name](tmp_path, value)


@pytest.mark.parametrize("value", ["no", ""])
def test_the_factories_pass_their_switches_on_checked(value: str) -> None:
    with pytest.raises(TypeError, match="require_exp"):
        create_jwt_middleware(SECRET, "rules: []", require_exp=value, audit=None)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="accept_bearer"):
        create_api_key_middleware("rules: []", KEYS, accept_bearer=value, audit=None)  # type: ignore[arg-type]


def test_decision_logs_takes_a_bool_or_a_provider() -> None:
    with pytest.raises(TypeError, match="decision_logs"):
        GuardTelemetry(registry=CollectorRegistry(), decision_logs="no")
