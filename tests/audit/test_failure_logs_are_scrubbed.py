"""Found in review: when recording failed, the guard logged the whole traceback, and an
exception's message may quote what it was handling (a value being redacted, a policy
being loaded): a credential in it reached the log verbatim. The traceback is still logged,
with each part shaped like a credential masked, as reload errors are."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest
from audit_kit import event

from guard.audit import AuditLog
from guard.audit.redact import Redactor
from guard.audit.rows import RowBuilder
from guard.reload import PolicyHolder

KEY = "sk-live-" + "5e4d3c2b1a0f" * 3


def _raise(*_: Any, **__: Any) -> Any:
    raise ValueError(f"cannot handle {KEY}")


def test_a_record_that_cannot_be_queued_is_logged_without_the_credential(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = AuditLog(tmp_path / "s")
    monkeypatch.setattr(Redactor, "redact", _raise)
    monkeypatch.setattr(Redactor, "measured", _raise)  # (what `append` redacts with)
    with caplog.at_level(logging.DEBUG, logger="guard"):
        assert log.append(event(1)) is False
        log._put = _raise  # type: ignore[method-assign]
        assert log.append_listing("L1", [event(2, method="tools/list", action="list")]) is False
        log.append_outcome("d1", "ok", 1.0, None)
    log.close()
    assert KEY not in caplog.text
    assert caplog.text.count("ValueError: cannot handle <redacted:secret>") == 3
    assert "Traceback (most recent call last)" in caplog.text  # still says where


def test_a_record_that_cannot_be_encoded_is_logged_without_the_credential(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = AuditLog(tmp_path / "s", flush_interval=3600)
    monkeypatch.setattr(RowBuilder, "body", _raise)
    with caplog.at_level(logging.DEBUG, logger="guard"):
        log.append(event(1))
        log.flush()
    log.close()
    assert KEY not in caplog.text and "ValueError: cannot handle <redacted:secret>" in caplog.text


def test_a_watched_reload_that_breaks_is_logged_without_the_credential(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "p.yaml"
    path.write_text("name: p\nrules: []\n")
    holder = PolicyHolder(path)
    monkeypatch.setattr("guard.reload.load_policy_set", _raise)
    with caplog.at_level(logging.DEBUG, logger="guard"):
        holder._reload_quietly()
    holder.close()
    assert KEY not in caplog.text and "ValueError: cannot handle <redacted:secret>" in caplog.text


def test_a_uri_quoted_in_a_logged_traceback_keeps_no_password_or_sensitive_value() -> None:
    from guard.audit.redact import traceback_text

    secret = "hunter2hunter2"
    try:
        raise ValueError(
            f"cannot read 'vault://db/x?password={secret}&v=1' from https://ops:{secret}@db.local/"
        )
    except ValueError as exc:
        text = traceback_text(exc)
    assert secret not in text
    assert "vault://db/x?password=<redacted:path>&v=1" in text
    assert "https://ops:<redacted:path>@db.local/" in text
