"""A header an authenticator reads is named by a non-empty token: `header=""` (an unset
variable) or `"X API Key"` read a header no request carries, so every caller was refused
with `missing_credentials` and nothing was said at startup; `None` failed with an
AttributeError."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from guard import create_api_key_middleware, create_jwt_middleware
from guard.identity import ApiKeyAuthenticator, HeaderAuthenticator, JWTAuthenticator

SECRET = "header-name-test-secret-32-bytes0"
KEYS = {"header-name-test-key-01": ["user"]}

BUILDERS: dict[str, Callable[[Any], object]] = {
    "header": lambda v: JWTAuthenticator(secret=SECRET, header=v),
    "header ": lambda v: ApiKeyAuthenticator(KEYS, header=v),
    "secret_header": lambda v: HeaderAuthenticator(shared_secret=SECRET, secret_header=v),
    "token_header": lambda v: create_jwt_middleware(SECRET, "", token_header=v, audit=None),
    "api_key_header": lambda v: create_api_key_middleware("", KEYS, api_key_header=v, audit=None),
}


@pytest.mark.parametrize("value", ["", "  ", "X API Key", "x-api-key:", None, 1])
@pytest.mark.parametrize("name", sorted(BUILDERS))
def test_a_header_no_request_carries_is_refused(name: str, value: object) -> None:
    parameter = name.strip().removeprefix("token_").removeprefix("api_key_")
    with pytest.raises((TypeError, ValueError), match=parameter):
        BUILDERS[name](value)


@pytest.mark.parametrize("value", ["X-Token", "authorization", "x_api_key"])
def test_header_names_in_any_case_still_work(value: str) -> None:
    assert JWTAuthenticator(secret=SECRET, header=value).header == value.lower()
    assert ApiKeyAuthenticator(KEYS, header=value).header == value.lower()
