"""Query parameters separated by `;` are redacted like those separated by `&`."""

from __future__ import annotations

from guard.audit.redact import Redactor


def test_semicolon_separated_token_parameter_is_redacted() -> None:
    # `;` is a query separator for many servers (HTML 4 / W3C recommendation, Python's
    # parse_qs before 3.9.2, Tomcat/Jetty path parameters `;jsessionid=`).
    uri = Redactor().uri("https://api.example.com/x?page=1;token=hunter2-secret", {}, {}, ())
    assert "hunter2-secret" not in uri, uri
