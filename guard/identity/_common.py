"""Small pieces every authenticator shares: reason codes, fingerprints, header reading.

Nothing here ever returns or logs a credential: `fingerprint` is the only thing that
leaves with a request's secret, and it is a truncated one-way hash.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
from collections.abc import Mapping, Set
from typing import Final

from guard.errors import AuthenticationError

__all__ = [
    "AMBIGUOUS_CREDENTIALS",
    "LOG",
    "MISSING_CREDENTIALS",
    "UNTRUSTED_PROXY",
    "bearer_token",
    "digest_fingerprint",
    "fail",
    "fingerprint",
    "header_name",
    "header_text",
    "refuse_repeated",
    "specificity",
]

LOG: Final = logging.getLogger("guard.identity")

AMBIGUOUS_CREDENTIALS: Final = "ambiguous_credentials"
MISSING_CREDENTIALS: Final = "missing_credentials"
UNTRUSTED_PROXY: Final = "untrusted_proxy"

_TOKEN: Final = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")  # RFC 9110 field name
_KEY_ID_DOMAIN: Final = b"mcp-guard key_id v1\x00"
_KEY_ID_HEX: Final = 12


def digest_fingerprint(digest: bytes, secret: bytes | None = None) -> str:
    """Return the `key_id` of a credential given its SHA-256 `digest`.

    Working from the digest lets a key configured only as `sha256:<hex>` get the same
    `key_id` as the same key configured in plain text. With a `secret` the fingerprint
    is an HMAC, so even a weak key cannot be guessed offline from its `key_id`.
    """
    if secret is not None:
        mac = hmac.new(secret, _KEY_ID_DOMAIN + digest, hashlib.sha256).hexdigest()
    else:
        mac = hashlib.sha256(_KEY_ID_DOMAIN + digest).hexdigest()
    return mac[:_KEY_ID_HEX]


def fingerprint(credential: str | bytes, secret: bytes | None = None) -> str:
    """Return a short, stable, one-way fingerprint (`key_id`) of a credential.

    Example:
        ```python
        from guard.identity import fingerprint

        assert len(fingerprint("user-key-123")) == 12
        assert fingerprint("user-key-123") != fingerprint("user-key-124")
        ```
    """
    raw = credential.encode() if isinstance(credential, str) else credential
    return digest_fingerprint(hashlib.sha256(raw).digest(), secret)


def header_name(name: str, value: object) -> str:
    """`value` as the lower-case name of the header an authenticator reads; `""` (an unset
    variable) or a name with spaces or a colon is no header a request carries, so every
    caller would be refused: a `TypeError` / `ValueError` naming `name` instead."""
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a header name, not {type(value).__name__}")
    if not _TOKEN.fullmatch(value):
        raise ValueError(f"{name} must be a header name: not empty, no spaces or colons")
    return value.lower()


def bearer_token(headers: Mapping[str, str], header: str = "authorization") -> str | None:
    """Return the credential of an `Authorization: Bearer <token>` style header.

    The scheme is matched case-insensitively (RFC 9110); any other scheme (`Basic`, ...)
    is not a bearer credential and yields `None`, as does an empty token.
    """
    value = headers.get(header)
    if not value:
        return None
    scheme, _, token = value.strip().partition(" ")
    if scheme.lower() != "bearer":
        return None
    token = token.strip()
    return token or None


def header_text(secret: str) -> bool:
    """Whether `secret` can be compared with a header value: printable ASCII only.

    HTTP carries header values as bytes that Starlette decodes as latin-1, while a secret
    is configured as text: a non-ASCII one would match only clients that send latin-1 (a
    UTF-8 client never), and control characters do not travel at all.
    """
    return secret.isascii() and secret.isprintable()


def fail(reason: str, message: str, key_id: str | None = None) -> AuthenticationError:
    """Log an authentication failure (reason and `key_id` only) and build its error."""
    if LOG.isEnabledFor(logging.DEBUG):
        LOG.debug("authentication failed: reason=%s key_id=%s", reason, key_id or "-")
    return AuthenticationError(reason, message)


def refuse_repeated(repeated: Set[str], read: Set[str]) -> None:
    """Refuse a request that carried one of the headers an authenticator `read`s twice.

    Nothing tells a client's copy from a proxy's: believing either one (a dict keeps the
    last, Starlette's `Headers.get` and FastMCP's bearer check take the first) would let a
    client pick its own identity behind a proxy that appends instead of replacing.
    """
    if repeated and not repeated.isdisjoint(read):
        names = ", ".join(sorted(repeated & read))
        raise fail(AMBIGUOUS_CREDENTIALS, f"header sent more than once: {names}")


_RANK: Final = {MISSING_CREDENTIALS: 0, UNTRUSTED_PROXY: 1, "disallowed_algorithm": 2}


def specificity(reason: str) -> int:
    """Rank a failure reason: a presented-but-bad credential says more than a missing one.

    `disallowed_algorithm` ranks just below other bad credentials: in a chain of JWT
    authenticators (one per issuer) it often only means "signed for another of them".
    """
    return _RANK.get(reason, 3)
