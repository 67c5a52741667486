"""Redactor refuses, at construction and naming the parameter, one string where a list of
paths or names is expected: `Redactor(paths="ssn")` made the letters s and n sensitive, so
the `ssn` argument it was told to redact was recorded in clear; `names="secret"` replaced
the default names by letters, and every password was recorded."""

from __future__ import annotations

from pathlib import Path

import pytest

from guard.audit import AuditLog
from guard.audit.redact import Redactor


@pytest.mark.parametrize("option", ["paths", "names"])
@pytest.mark.parametrize("value", ["ssn", b"ssn"])
def test_one_string_is_refused(option: str, value: object) -> None:
    with pytest.raises(TypeError, match=option):
        Redactor(**{option: value})


def test_one_string_is_refused_by_the_audit_log(tmp_path: Path) -> None:
    with pytest.raises(TypeError, match="redact_paths"):
        AuditLog(tmp_path / "s", redact_paths="ssn")


def test_a_list_still_redacts() -> None:
    args, redacted = Redactor(paths=["ssn"]).redact({"ssn": "123-45-6789", "city": "Paris"})
    assert redacted == ("ssn",) and args is not None and args["city"] == "Paris"
    assert Redactor(paths=("ssn",), names={"secret"}).redact({"ssn": "1"})[1] == ("ssn",)


@pytest.mark.parametrize("size", [float("nan"), float("inf"), "4096", 15])
def test_a_value_size_cap_that_caps_nothing_is_refused(size: object) -> None:
    with pytest.raises((TypeError, ValueError), match="max_value_chars"):
        Redactor(max_value_chars=size)  # type: ignore[arg-type]
