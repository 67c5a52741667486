"""Trusted-header settings that trust more than they say, found in review:
`trusted_proxies=["0.0.0.0/1", "128.0.0.0/1"]` trusted every IPv4 address, though one
network covering every address is refused; and a `header_mapping` naming the proxy's
`secret_header` copied the shared secret into every principal's claims (and from there
into records and spans, if claims are kept)."""

from __future__ import annotations

import pytest

from guard.identity import HeaderAuthenticator

SECRET = "proxy-shared-secret-0123456789"


@pytest.mark.parametrize(
    "proxies",
    [
        ["0.0.0.0/1", "128.0.0.0/1"],
        ["::/1", "8000::/1"],
        [f"{n}.0.0.0/8" for n in range(256)],
    ],
)
def test_networks_that_together_cover_every_address_are_refused(proxies: list[str]) -> None:
    with pytest.raises(ValueError, match="trusted_proxies"):
        HeaderAuthenticator(trusted_proxies=proxies)


def test_networks_covering_most_addresses_are_accepted() -> None:
    HeaderAuthenticator(trusted_proxies=["0.0.0.0/1", "10.0.0.0/8", "::1/128"])


def test_the_secret_header_cannot_be_mapped_to_an_attribute() -> None:
    with pytest.raises(ValueError, match="secret_header") as refused:
        HeaderAuthenticator(
            {"x-user-id": "user_id", "X-Guard-Proxy-Secret": "proxy"},
            trusted_proxies=[], shared_secret=SECRET,
        )  # fmt: skip
    assert SECRET not in str(refused.value)
