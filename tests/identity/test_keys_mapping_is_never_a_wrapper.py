"""`ApiKeyAuthenticator(keys=...)` takes its mapping as keys: `{"keys": ...}` wraps keys in
a file or an environment variable only, as documented. Found in review: a mapping passed
in code whose one key is the API key `keys` was unwrapped, so `{"keys": ["admin"]}` (key
`keys`, role admin) let in the guessable key `admin` with role `api_user`, and refused
the configured key."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from guard.errors import AuthenticationError
from guard.identity import ApiKeyAuthenticator
from guard.identity.base import RequestInfo


def presenting(key: str) -> RequestInfo:
    return RequestInfo(transport="http", headers={"x-api-key": key})


def test_a_mapping_in_code_is_keys_and_their_roles() -> None:
    auth = ApiKeyAuthenticator({"keys": ["admin"]})
    principal = asyncio.run(auth.authenticate(presenting("keys")))
    assert principal.roles == ("admin",)
    with pytest.raises(AuthenticationError) as refused:
        asyncio.run(auth.authenticate(presenting("admin")))
    assert refused.value.reason == "invalid_api_key"


def test_a_file_may_still_wrap_its_keys(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    keys = tmp_path / "keys.yaml"
    keys.write_text("keys:\n  team-key-123: [user]\n")
    monkeypatch.setenv("GUARD_TEST_KEYS", '{"keys": {"env-key-456": ["ops"]}}')
    auth = ApiKeyAuthenticator(file=keys, env="GUARD_TEST_KEYS")
    assert asyncio.run(auth.authenticate(presenting("team-key-123"))).roles == ("user",)
    assert asyncio.run(auth.authenticate(presenting("env-key-456"))).roles == ("ops",)
