"""HeaderAuthenticator: identity headers only from trusted proxies or with the shared secret."""

from __future__ import annotations

import pytest
from identity_kit import http, remember

from guard.errors import AuthenticationError
from guard.identity import HeaderAuthenticator

MAPPING = {"x-user-id": "user_id", "x-user-roles": "roles", "x-tenant": "tenant"}
SPOOF = {"X-User-Id": "mallory", "X-User-Roles": "admin"}


async def reason(auth: HeaderAuthenticator, headers: dict[str, str], host: str | None) -> str:
    with pytest.raises(AuthenticationError) as caught:
        await auth.authenticate(http(headers, host=host))  # type: ignore[arg-type]
    return caught.value.reason


async def test_loopback_proxy_is_trusted_by_default() -> None:
    auth = HeaderAuthenticator(MAPPING)
    headers = {"X-User-Id": "alice", "X-User-Roles": "admin, ops ,", "X-Tenant": "acme"}
    p = await auth.authenticate(http(headers, host="127.0.0.1"))
    assert (p.user_id, p.roles, dict(p.claims)) == ("alice", ("admin", "ops"), {"tenant": "acme"})
    assert p.auth_method == "header" and p.key_id is None
    assert (await auth.authenticate(http(headers, host="::1"))).user_id == "alice"


async def test_spoofed_headers_from_an_untrusted_address() -> None:
    # The trusted-proxy list deliberately excludes the client.
    auth = HeaderAuthenticator(MAPPING, trusted_proxies=["10.0.0.0/8"])
    assert await reason(auth, SPOOF, "127.0.0.1") == "untrusted_proxy"
    assert await reason(auth, SPOOF, "203.0.113.9") == "untrusted_proxy"
    assert await reason(auth, SPOOF, None) == "untrusted_proxy"  # no address, no trust
    assert await reason(auth, SPOOF, "not-an-ip") == "untrusted_proxy"
    assert (await auth.authenticate(http(SPOOF, host="10.1.2.3"))).user_id == "mallory"


async def test_ipv4_mapped_ipv6_address_matches_ipv4_network() -> None:
    auth = HeaderAuthenticator(MAPPING, trusted_proxies=["10.0.0.0/8"])
    assert (await auth.authenticate(http(SPOOF, host="::ffff:10.0.0.7"))).user_id == "mallory"


async def test_shared_secret_header() -> None:
    secret = remember("proxy-shared-secret-0123456789")
    auth = HeaderAuthenticator(MAPPING, trusted_proxies=[], shared_secret=secret)
    ok = {**SPOOF, "X-Guard-Proxy-Secret": secret}
    assert (await auth.authenticate(http(ok, host="198.51.100.1"))).roles == ("admin",)
    wrong = {**SPOOF, "X-Guard-Proxy-Secret": secret[:-1] + "X"}
    assert await reason(auth, wrong, "198.51.100.1") == "untrusted_proxy"
    assert await reason(auth, SPOOF, "127.0.0.1") == "untrusted_proxy"  # no list, no secret
    p = await auth.authenticate(http(ok, host="198.51.100.1"))
    assert secret not in repr(p)  # the secret header is not a mapped claim


async def test_no_identity_headers_is_missing_credentials() -> None:
    auth = HeaderAuthenticator(MAPPING, trusted_proxies=["10.0.0.0/8"])
    assert await reason(auth, {}, "203.0.113.9") == "missing_credentials"
    trusting = HeaderAuthenticator(MAPPING)
    assert await reason(trusting, {"X-User-Roles": "admin"}, "127.0.0.1") == "missing_credentials"
    assert await reason(trusting, {"X-User-Id": "  "}, "127.0.0.1") == "missing_credentials"


async def test_default_mapping_is_the_seeds() -> None:
    auth = HeaderAuthenticator()
    headers = {"X-User-Id": "alice", "X-Agent-Id": "claude", "X-User-Roles": "user"}
    p = await auth.authenticate(http(headers))
    assert (p.user_id, p.agent_id, p.roles) == ("alice", "claude", ("user",))


def test_configuration_errors() -> None:
    with pytest.raises(ValueError, match="user_id"):
        HeaderAuthenticator({"x-roles": "roles"})
    with pytest.raises(ValueError, match="trusted_proxies"):
        HeaderAuthenticator(trusted_proxies=["10.0.0.0/33"])
    with pytest.raises(ValueError, match="16"):
        HeaderAuthenticator(shared_secret="short")


def test_a_shared_secret_with_surrounding_whitespace_is_refused() -> None:
    # `open("/run/secrets/proxy").read()` keeps the newline, which no HTTP header value
    # can carry: the proxy's requests would never be trusted, all refused `untrusted_proxy`.
    secret = remember("proxy-shared-secret-0123456789")
    with pytest.raises(ValueError, match="whitespace") as caught:
        HeaderAuthenticator(MAPPING, shared_secret=secret + "\n")
    assert secret not in str(caught.value)
    with pytest.raises(ValueError, match="whitespace"):
        HeaderAuthenticator(MAPPING, shared_secret=" " + secret)
