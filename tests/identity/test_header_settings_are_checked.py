"""HeaderAuthenticator refuses, at construction, a setting under which no request could
ever be authenticated: an empty roles separator failed every request carrying roles
(`str.split("")` raises), and no trusted proxy with no shared secret trusted nobody, so
every caller was refused as `untrusted_proxy` with nothing said at startup."""

from __future__ import annotations

import pytest
from identity_kit import http

from guard import create_header_middleware
from guard.identity import HeaderAuthenticator

MAPPING = {"x-user-id": "user_id", "x-user-roles": "roles"}


@pytest.mark.parametrize("separator", ["", None, 1])
def test_a_roles_separator_that_splits_nothing_is_refused(separator: object) -> None:
    with pytest.raises((TypeError, ValueError), match="roles_separator"):
        HeaderAuthenticator(MAPPING, roles_separator=separator)  # type: ignore[arg-type]


@pytest.mark.parametrize("proxies", [[], ()])
def test_nobody_to_trust_is_refused(proxies: list[str]) -> None:
    with pytest.raises(ValueError, match="trusted_proxies"):
        HeaderAuthenticator(MAPPING, trusted_proxies=proxies)
    with pytest.raises(ValueError, match="trusted_proxies"):
        create_header_middleware({"name": "p"}, MAPPING, trusted_proxies=proxies, audit=None)


async def test_a_shared_secret_alone_still_works() -> None:
    secret = "s" * 32
    auth = HeaderAuthenticator(MAPPING, trusted_proxies=[], shared_secret=secret)
    headers = {"x-user-id": "alice", "x-user-roles": "a; b", "x-guard-proxy-secret": secret}
    p = await auth.authenticate(http(headers, host="203.0.113.9"))
    assert p.user_id == "alice"
    semi = HeaderAuthenticator(MAPPING, roles_separator=";")
    p = await semi.authenticate(http(headers, host="127.0.0.1"))
    assert p.roles == ("a", "b")


@pytest.mark.parametrize("secret", [b"proxy-secret-as-bytes-0001", 12345678901234567890])
def test_a_shared_secret_that_is_not_text_is_refused_by_name(secret: object) -> None:
    """A `bytes` secret failed with `AttributeError: 'bytes' object has no attribute
    'encode'`, an int with `object of type 'int' has no len()`: neither says which setting."""
    with pytest.raises(TypeError, match="shared_secret") as caught:
        HeaderAuthenticator(MAPPING, shared_secret=secret)  # type: ignore[arg-type]
    assert "proxy-secret" not in str(caught.value) and "1234" not in str(caught.value)


@pytest.mark.parametrize("network", ["0.0.0.0/0", "::/0", "10.1.2.3/0"])
@pytest.mark.parametrize("secret", [None, "s" * 32])
async def test_trusting_every_address_is_refused(network: str, secret: str | None) -> None:
    """`0.0.0.0/0` believed `X-User-Roles: admin` from any client, the hole this
    authenticator exists to close; next to a shared secret it made the secret pointless."""
    with pytest.raises(ValueError, match="trusted_proxies"):
        HeaderAuthenticator(MAPPING, trusted_proxies=["10.0.0.0/8", network], shared_secret=secret)
    with pytest.raises(ValueError, match="trusted_proxies"):
        create_header_middleware({"name": "p"}, MAPPING, trusted_proxies=network, audit=None)


async def test_wide_private_networks_are_still_trusted() -> None:
    auth = HeaderAuthenticator(MAPPING, trusted_proxies=["10.0.0.0/8", "fc00::/7", "0.0.0.0/1"])
    p = await auth.authenticate(http({"x-user-id": "alice"}, host="10.9.8.7"))
    assert p.user_id == "alice"
