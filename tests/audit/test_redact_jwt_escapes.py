"""A JWT right after a percent escape (`Bearer%20eyJ...`, `id_token%3DeyJ...`) is still a
secret, now that the JWT shape starts only at a token's start (found in review)."""

from __future__ import annotations

import pytest

from guard.audit.redact import Redactor, looks_secret

JWT = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJlLXZhbHVl"


@pytest.mark.parametrize(
    "text",
    [
        "Bearer%20" + JWT,  # an Authorization value, percent-encoded
        "https://app.example.com/login?next=%2Fcb%3Fid_token%3D" + JWT,  # nested redirect
        "%7B%22token%22%3A%22" + JWT + "%22%7D",  # JSON in a query string
    ],
)
def test_a_jwt_after_a_percent_escape_is_still_a_secret(text: str) -> None:
    assert looks_secret(text)
    clean, redacted = Redactor().redact({"q": text})
    assert JWT not in str(clean) and redacted == ("q",)
    assert JWT not in Redactor().uri("nothing://x?q=" + text, {}, {}, ())
