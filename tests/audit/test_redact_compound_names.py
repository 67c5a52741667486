"""A sensitive name is caught as the last word of a longer one: `db_password`,
`accessToken`, `clientSecret`, `X-Auth-Token`, a query parameter `api-key`, a claim a
trusted proxy's header was mapped to (`upstream_token`). Matched exactly only, each of
these reached the record verbatim, though redaction promises names such as `password`,
`token` and `secret` at any depth."""

from __future__ import annotations

from typing import Any

import pytest
from audit_kit import event

from guard.audit import AuditLog, open_store
from guard.audit.redact import Redactor
from guard.policy.model import Principal, Resource

OPAQUE = "Zq8vN3rT6wY1pL0sK4mB7xC2"  # a credential with no known shape


@pytest.mark.parametrize(
    "key",
    [
        "db_password", "newPassword", "accessToken", "refreshToken", "clientSecret",
        "client-secret", "auth_token", "X-Auth-Token", "X-Amz-Security-Token", "api-key",
        "APIKey", "privateKey", "proxy-authorization", "sessionToken", "SECRET_KEY",
        "aws_secret_access_key", "ssh_passphrase",
    ],
)  # fmt: skip
def test_a_sensitive_name_ending_a_longer_one_is_redacted(key: str) -> None:
    out, redacted = Redactor().redact({"cfg": {key: OPAQUE}})
    assert out == {"cfg": {key: "<redacted:path>"}} and redacted == (f"cfg.{key}",)


@pytest.mark.parametrize(
    "key",
    ["max_tokens", "token_count", "tokens", "password_policy", "secretary", "cookies_ok",
     "keyword", "tokenizer", "monkey"],
)  # fmt: skip
def test_names_that_only_hold_a_sensitive_word_elsewhere_are_kept(key: str) -> None:
    args: dict[str, Any] = {key: OPAQUE}
    assert Redactor().redact(args) == (args, ())


def test_a_configured_name_ends_longer_names_too() -> None:
    _, redacted = Redactor(["ssn"]).redact({"patient_ssn": "123-45-6789", "ssn_count": 1})
    assert redacted == ("patient_ssn",)


@pytest.mark.parametrize(
    "uri", [f"vault://a/data?api-key={OPAQUE}", f"vault://a/data?X-Amz-Security-Token={OPAQUE}"]
)
def test_a_uri_parameter_ending_in_a_sensitive_name_loses_its_value(uri: str) -> None:
    shown = Redactor().uri(uri, None, None, ())
    assert OPAQUE not in shown and shown.endswith("=<redacted:path>")


def test_no_compound_sensitive_name_reaches_the_store(tmp_path: Any) -> None:
    log = AuditLog(tmp_path / "store")
    proxied = Principal("bob", ("user",), claims={"upstream_token": OPAQUE}, auth_method="header")
    log.append(event(args={"text": "hi", "db_password": OPAQUE, "accessToken": OPAQUE}))
    log.append(event(principal=proxied))
    read = Resource("resource", "vault", uri=f"vault://a/data?api-key={OPAQUE}", template="t")
    log.append(event(resource=read, action="read", method="resources/read"))
    log.close()
    for path in (tmp_path / "store").rglob("*"):
        if path.is_file():
            assert OPAQUE.encode() not in path.read_bytes(), path
    store = open_store(tmp_path / "store")
    rows = store.sql("SELECT args_redacted, inputs_redacted FROM decisions").fetchall()
    assert sorted(rows, key=str) == sorted(
        [(["db_password", "accessToken"], None), ([], ["claims.upstream_token"]),
         ([], ["resource_uri"])],
        key=str,
    )  # fmt: skip
