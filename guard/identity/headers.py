"""Identity asserted by a trusted proxy in request headers (`X-User-Id`, `X-User-Roles`).

Such headers are only as good as whoever set them. Behind an authenticating proxy (an
OAuth2 proxy, an API gateway) they are the proxy's word; from any other client they are
the client's own claim. So they are believed only from configured proxy addresses (CIDR
list; loopback by default) or with a shared secret header the proxy adds. From anyone
else they are ignored and the caller is refused (`untrusted_proxy`). mcp-auth-guard 1.0.0
believed `X-User-Roles: admin` from any client.
"""

from __future__ import annotations

import hmac
import ipaddress
import logging
from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import Final

from guard.identity._common import (
    LOG,
    MISSING_CREDENTIALS,
    UNTRUSTED_PROXY,
    fail,
    header_name,
    header_text,
    refuse_repeated,
)
from guard.identity.base import RequestInfo
from guard.policy.model import Principal

__all__ = ["DEFAULT_HEADER_MAPPING", "HeaderAuthenticator"]

DEFAULT_HEADER_MAPPING: Final[Mapping[str, str]] = MappingProxyType(
    {"x-user-id": "user_id", "x-agent-id": "agent_id", "x-user-roles": "roles"}
)
_LOOPBACK: Final = ("127.0.0.0/8", "::1/128")

_Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class HeaderAuthenticator:
    """Reads the principal from headers set by a trusted proxy.

    Args:
        header_mapping: header -> attribute, as in mcp-auth-guard: `user_id`, `roles`
            (comma-separated), `agent_id`; any other attribute becomes a claim.
        trusted_proxies: CIDR networks whose connections may assert identity headers
            (empty only with a `shared_secret`: otherwise no sender would be trusted). A
            network of every address (`0.0.0.0/0`, `::/0`) is refused: it would believe
            identity headers from any client, shared secret or not.
        shared_secret: if set, a request carrying it in `secret_header` is trusted whatever
            its address (for proxies whose address is not fixed). Compared in constant time.
        secret_header: the header carrying the shared secret.

    Example:
        ```python
        from guard.identity import HeaderAuthenticator

        auth = HeaderAuthenticator(
            {"x-user-id": "user_id", "x-user-roles": "roles"},
            trusted_proxies=["10.0.0.0/8"],
        )
        ```
    """

    method = "header"

    def __init__(
        self,
        header_mapping: Mapping[str, str] | None = None,
        *,
        trusted_proxies: Sequence[str] = _LOOPBACK,
        shared_secret: str | None = None,
        secret_header: str = "x-guard-proxy-secret",  # noqa: S107 - a header name
        roles_separator: str = ",",
    ) -> None:
        checked: dict[str, str] = {}
        for header, attribute in (header_mapping or DEFAULT_HEADER_MAPPING).items():
            # a header no request carries is never read; one mapped twice (in two cases)
            # or two headers for one attribute leave who the caller is to dict order
            name = header_name("header_mapping key", header)
            if not isinstance(attribute, str) or not attribute:
                raise TypeError("header_mapping values must be attribute names (strings)")
            if name in checked:
                raise ValueError(f"header_mapping names header {name!r} twice")
            if attribute in checked.values():
                raise ValueError(f"header_mapping maps two headers to {attribute!r}")
            checked[name] = attribute
        self.header_mapping: Mapping[str, str] = MappingProxyType(checked)
        if "user_id" not in self.header_mapping.values():
            raise ValueError("header_mapping must map one header to 'user_id'")
        if isinstance(trusted_proxies, str):
            trusted_proxies = (trusted_proxies,)
        try:
            self._networks: tuple[_Network, ...] = tuple(
                ipaddress.ip_network(n, strict=False) for n in trusted_proxies
            )
        except ValueError as exc:
            raise ValueError(f"trusted_proxies: {exc}") from None
        covered: list[_Network] = [
            *ipaddress.collapse_addresses(n for n in self._networks if n.version == 4),
            *ipaddress.collapse_addresses(n for n in self._networks if n.version == 6),
        ]
        if any(net.prefixlen == 0 for net in covered):  # one network, or several together
            # every client would be a proxy: `X-User-Roles: admin` believed from anyone
            raise ValueError(
                "trusted_proxies must not cover every address (0.0.0.0/0, ::/0): name the "
                "proxies' networks, or use shared_secret for a proxy whose address varies"
            )
        if shared_secret is not None and not isinstance(shared_secret, str):
            # compared with a header's text; named by type only, as it is a secret
            raise TypeError(f"shared_secret must be a string, not {type(shared_secret).__name__}")
        if shared_secret is not None and len(shared_secret) < 16:
            raise ValueError("shared_secret must be at least 16 characters")
        if shared_secret is not None and shared_secret != shared_secret.strip():
            # no header value carries it (HTTP strips it): the proxy would never be trusted
            raise ValueError(
                "shared_secret must not begin or end with whitespace (read from a file?)"
            )
        if shared_secret is not None and not header_text(shared_secret):
            # header values arrive as latin-1 text: a UTF-8 proxy's copy would never match
            raise ValueError("shared_secret must be printable ASCII (it travels in a header)")
        if not self._networks and shared_secret is None:
            # nobody could ever be authenticated: say so now, not as every caller's refusal
            raise ValueError(
                "trusted_proxies is empty and no shared_secret is set: no sender is trusted"
            )
        if not isinstance(roles_separator, str) or not roles_separator:
            # str.split("") raises: every request carrying roles would fail
            raise ValueError("roles_separator must be a non-empty string")
        self._secret = shared_secret.encode() if shared_secret else None
        self.secret_header = header_name("secret_header", secret_header)
        if self.secret_header in self.header_mapping:
            # the shared secret would be copied into every principal's claims
            raise ValueError("header_mapping must not map the secret_header")
        self.roles_separator = roles_separator
        secret_read = (self.secret_header,) if self._secret is not None else ()
        self._read = frozenset((*self.header_mapping, *secret_read))

    def _trusted(self, info: RequestInfo) -> bool:
        if self._secret is not None:
            sent = info.headers.get(self.secret_header, "").encode()
            if hmac.compare_digest(sent, self._secret):
                return True
        if not info.client_host or not self._networks:
            return False
        try:
            address = ipaddress.ip_address(info.client_host)
        except ValueError:
            return False  # a host name or garbage is not an address we were told to trust
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
            address = address.ipv4_mapped
        return any(address in net for net in self._networks)

    async def authenticate(self, info: RequestInfo) -> Principal:
        """Build the principal from the mapped headers, if their sender is trusted.

        Raises:
            AuthenticationError: `untrusted_proxy` (identity headers from an untrusted
                sender), `ambiguous_credentials` (one of them, or the shared secret, sent
                twice) or `missing_credentials` (no user id header).
        """
        refuse_repeated(info.repeated, self._read)
        values = {
            attr: value
            for header, attr in self.header_mapping.items()
            if (value := info.headers.get(header, "").strip())
        }
        if not self._trusted(info):
            if values:
                raise fail(UNTRUSTED_PROXY, "identity headers from an untrusted sender")
            raise fail(MISSING_CREDENTIALS, "no identity headers")
        user_id = values.pop("user_id", None)
        if not user_id:
            raise fail(MISSING_CREDENTIALS, "no user id header")
        roles_text = values.pop("roles", "")
        roles = tuple(r.strip() for r in roles_text.split(self.roles_separator) if r.strip())
        agent_id = values.pop("agent_id", None)
        if LOG.isEnabledFor(logging.DEBUG):
            LOG.debug("authenticated: method=header")
        return Principal(
            user_id=user_id,
            roles=roles,
            agent_id=agent_id,
            claims=MappingProxyType(values),
            authenticated=True,
            auth_method=self.method,
        )
