"""`HeaderAuthenticator(header_mapping=)` and `StdioAuthenticator` settings are checked at
construction, by name. Found in review: a mapping key no request carries (`""`, a name
with a space) was never read, so every caller was refused as `missing_credentials`; two
headers mapped to `user_id` let whichever came last in the mapping decide who the caller
was; and `StdioAuthenticator(user_id=123)` built a principal whose id is not text."""

from __future__ import annotations

import asyncio

import pytest

from guard.identity import HeaderAuthenticator, StdioAuthenticator
from guard.identity.base import RequestInfo


@pytest.mark.parametrize("header", ["", "x user", "x-user:", " x-user"])
def test_a_mapped_header_no_request_carries_is_refused(header: str) -> None:
    with pytest.raises(ValueError, match="header_mapping"):
        HeaderAuthenticator({header: "user_id"})


@pytest.mark.parametrize("attribute", ["", None, 1])
def test_a_mapped_attribute_must_be_a_name(attribute: object) -> None:
    with pytest.raises((TypeError, ValueError), match="header_mapping"):
        HeaderAuthenticator({"x-user-id": "user_id", "x-team": attribute})  # type: ignore[dict-item]


def test_two_headers_for_one_attribute_are_refused() -> None:
    with pytest.raises(ValueError, match=r"header_mapping.*user_id"):
        HeaderAuthenticator({"x-user-id": "user_id", "x-forwarded-user": "user_id"})


def test_headers_differing_only_in_case_are_one_header() -> None:
    with pytest.raises(ValueError, match="header_mapping"):
        HeaderAuthenticator({"X-User-Id": "user_id", "x-user-id": "agent_id"})


def test_a_valid_mapping_still_reads_its_headers() -> None:
    auth = HeaderAuthenticator({"X-Forwarded-User": "user_id", "X-Team": "team"})
    info = RequestInfo("http", {"x-forwarded-user": "ann", "x-team": "red"}, "127.0.0.1")
    principal = asyncio.run(auth.authenticate(info))
    assert principal.user_id == "ann" and principal.claims == {"team": "red"}


@pytest.mark.parametrize("field", ["user_id", "agent_id"])
@pytest.mark.parametrize("value", [123, ["alice"], b"alice"])
def test_a_local_identity_is_text(field: str, value: object) -> None:
    with pytest.raises(TypeError, match=field):
        StdioAuthenticator(**{field: value})  # type: ignore[arg-type]
