"""ApiKeyAuthenticator: keys map to principals, digests work, the key never leaves."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from identity_kit import http, remember

from guard.errors import AuthenticationError
from guard.identity import ApiKeyAuthenticator, fingerprint, hash_api_key

USER_KEY = remember("user-key-123-abcdef")
ADMIN_KEY = remember("admin-key-456-abcdef")


async def reason(auth: ApiKeyAuthenticator, headers: dict[str, str]) -> str:
    with pytest.raises(AuthenticationError) as caught:
        await auth.authenticate(http(headers))
    return caught.value.reason


async def test_seed_style_roles_mapping() -> None:
    auth = ApiKeyAuthenticator({USER_KEY: ["user"], ADMIN_KEY: ["admin"]})
    p = await auth.authenticate(http({"X-API-Key": ADMIN_KEY}))
    assert p.roles == ("admin",) and p.auth_method == "api_key" and p.authenticated
    assert p.key_id == fingerprint(ADMIN_KEY)
    assert p.user_id == f"api-key:{p.key_id}"


async def test_the_key_never_leaves_the_authenticator() -> None:
    auth = ApiKeyAuthenticator({USER_KEY: {"user_id": "alice", "roles": ["user"]}})
    p = await auth.authenticate(http({"X-API-Key": USER_KEY, "X-Agent-Id": "claude"}))
    assert (p.user_id, p.roles, p.agent_id) == ("alice", ("user",), "claude")
    # mcp-auth-guard put {"api_key": key} into the claims; nothing here may hold it
    assert dict(p.claims) == {}
    assert USER_KEY not in repr(p) and USER_KEY not in repr(auth.__dict__)
    assert USER_KEY not in json.dumps([p.user_id, p.key_id, p.agent_id, list(p.roles)])


async def test_digest_configured_key_has_the_same_key_id() -> None:
    plain = ApiKeyAuthenticator({USER_KEY: ["user"]})
    hashed = ApiKeyAuthenticator({hash_api_key(USER_KEY): ["user"]})
    a = await plain.authenticate(http({"x-api-key": USER_KEY}))
    b = await hashed.authenticate(http({"x-api-key": USER_KEY}))
    assert a == b and hashed.key_ids == plain.key_ids
    # uppercase hex is a digest too
    upper = ApiKeyAuthenticator(
        {"sha256:" + hashlib.sha256(USER_KEY.encode()).hexdigest().upper(): ["u"]}
    )
    assert (await upper.authenticate(http({"x-api-key": USER_KEY}))).roles == ("u",)


async def test_key_id_secret_makes_an_hmac_fingerprint() -> None:
    auth = ApiKeyAuthenticator({USER_KEY: ["user"]}, key_id_secret="pepper-0123456789")
    p = await auth.authenticate(http({"x-api-key": USER_KEY}))
    assert p.key_id != fingerprint(USER_KEY)
    assert p.key_id == fingerprint(USER_KEY, b"pepper-0123456789")


async def test_seed_api_keys_list_gets_api_user_role() -> None:
    auth = ApiKeyAuthenticator([USER_KEY])
    assert (await auth.authenticate(http({"x-api-key": USER_KEY}))).roles == ("api_user",)


async def test_keys_from_yaml_file_json_file_and_env(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    yml = tmp_path / "keys.yaml"
    yml.write_text(f"keys:\n  {hash_api_key(USER_KEY)}:\n    user_id: alice\n    roles: [user]\n")
    js = tmp_path / "keys.json"
    js.write_text(json.dumps({ADMIN_KEY: ["admin"]}))
    ci_key = remember("ci-key-from-env-0001")
    monkeypatch.setenv(
        "TEST_GUARD_KEYS", json.dumps({ci_key: {"user_id": "ci", "roles": ["deployer"]}})
    )
    for auth, key, user in [
        (ApiKeyAuthenticator(file=yml), USER_KEY, "alice"),
        (ApiKeyAuthenticator(file=js), ADMIN_KEY, None),
        (ApiKeyAuthenticator(env="TEST_GUARD_KEYS"), ci_key, "ci"),
    ]:
        p = await auth.authenticate(http({"x-api-key": key}))
        assert user is None or p.user_id == user
    merged = ApiKeyAuthenticator({"other-key-0000": ["x"]}, file=yml, env="TEST_GUARD_KEYS")
    assert len(merged.key_ids) == 3


async def test_wrong_api_key() -> None:
    auth = ApiKeyAuthenticator({USER_KEY: ["user"]})
    assert await reason(auth, {"X-API-Key": remember("user-key-124-abcdef")}) == "invalid_api_key"
    assert await reason(auth, {"X-API-Key": USER_KEY[:-1]}) == "invalid_api_key"
    assert await reason(auth, {"X-API-Key": "x" * 5000}) == "invalid_api_key"


async def test_api_key_in_the_wrong_header() -> None:
    auth = ApiKeyAuthenticator({USER_KEY: ["user"]})
    assert await reason(auth, {"Authorization": f"Bearer {USER_KEY}"}) == "missing_credentials"
    assert await reason(auth, {"X-Api-Token": USER_KEY}) == "missing_credentials"
    custom = ApiKeyAuthenticator({USER_KEY: ["user"]}, header="X-Service-Key")
    assert await reason(custom, {"X-API-Key": USER_KEY}) == "missing_credentials"
    assert (await custom.authenticate(http({"x-service-key": USER_KEY}))).roles == ("user",)
    bearer_ok = ApiKeyAuthenticator({USER_KEY: ["user"]}, accept_bearer=True)
    p = await bearer_ok.authenticate(http({"Authorization": f"Bearer {USER_KEY}"}))
    assert p.roles == ("user",)


@pytest.mark.parametrize("value", ["", "   "])
async def test_empty_credentials(value: str) -> None:
    auth = ApiKeyAuthenticator({USER_KEY: ["user"]})
    assert await reason(auth, {"X-API-Key": value}) == "missing_credentials"
    assert await reason(auth, {}) == "missing_credentials"


async def test_keys_are_held_and_matched_only_as_digests() -> None:
    # Lookup is by SHA-256 of the presented key: the authenticator keeps no plain key to
    # compare (or leak), and a key one character off is simply another digest.
    keys = {f"key-number-{i:04d}": ["r"] for i in range(1000)}
    auth = ApiKeyAuthenticator(keys)
    state = repr([getattr(auth, a, None) for a in dir(auth) if not a.startswith("__")])
    assert "key-number-" not in state
    ok = await auth.authenticate(http({"x-api-key": "key-number-0999"}))
    assert ok.roles == ("r",)
    with pytest.raises(AuthenticationError) as caught:
        await auth.authenticate(http({"x-api-key": "key-number-0990x"}))
    assert caught.value.reason == "invalid_api_key"


def test_configuration_errors(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="at least one key"):
        ApiKeyAuthenticator({})
    with pytest.raises(ValueError, match="twice"):
        ApiKeyAuthenticator({USER_KEY: ["a"], hash_api_key(USER_KEY): ["b"]})
    with pytest.raises(ValueError, match="roles must be a list"):
        ApiKeyAuthenticator({USER_KEY: [1, 2]})
    with pytest.raises(ValueError, match="unknown fields") as caught:
        ApiKeyAuthenticator({USER_KEY: {"role": ["a"]}})
    assert USER_KEY not in str(caught.value)  # errors name the position, never the key
    with pytest.raises(ValueError, match="is not set"):
        ApiKeyAuthenticator(env="TEST_GUARD_NO_SUCH_VARIABLE")
    bad = tmp_path / "bad.yaml"
    bad.write_text("keys: [unclosed")
    with pytest.raises(ValueError, match="not valid YAML"):
        ApiKeyAuthenticator(file=bad)


@pytest.mark.parametrize(
    "padded", [USER_KEY + "\n", " " + USER_KEY, USER_KEY + "\t"], ids=["newline", "space", "tab"]
)
def test_a_key_with_surrounding_whitespace_is_refused_at_load(padded: str, tmp_path: Path) -> None:
    # HTTP strips a header value's surrounding whitespace, and so does the authenticator:
    # such a key (`open("key").read()` keeps the newline) could never match, and every
    # caller would be told `invalid_api_key`, with nothing to say why.
    with pytest.raises(ValueError, match="whitespace") as caught:
        ApiKeyAuthenticator({padded: ["user"]})
    assert USER_KEY not in str(caught.value)  # errors name the position, never the key
    with pytest.raises(ValueError, match="whitespace"):
        ApiKeyAuthenticator([padded])
    keys = tmp_path / "keys.json"
    keys.write_text(json.dumps({padded: ["user"]}))
    with pytest.raises(ValueError, match="whitespace"):
        ApiKeyAuthenticator(file=keys)


@pytest.mark.parametrize("secret", ["", b"", 12345, ["k"]])
def test_a_key_id_secret_that_keys_nothing_is_refused_by_name(secret: object) -> None:
    """`key_id_secret=""` (an unset variable) was taken: an HMAC with an empty key, which
    anyone can compute, so weak keys could be guessed from their key_id after all; an int
    failed inside hmac without naming the setting."""
    with pytest.raises((TypeError, ValueError), match="key_id_secret") as caught:
        ApiKeyAuthenticator({"user-key-123": ["user"]}, key_id_secret=secret)  # type: ignore[arg-type]
    assert "12345" not in str(caught.value)
