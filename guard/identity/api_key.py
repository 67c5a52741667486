"""API keys mapped to principals, compared in constant time, never passed on.

Keys are held only as SHA-256 digests (a key configured as `sha256:<hex>` is never known
in plain text at all). A presented key is hashed once and looked up by its digest, so the
cost does not grow with the number of keys. Comparing digests rather than keys is what
keeps timing harmless: how long a lookup takes can only say something about the SHA-256 of
the presented key, and turning knowledge about a digest into a key means inverting SHA-256.
The match is confirmed with `hmac.compare_digest`. What leaves the authenticator is
the key's fingerprint (`Principal.key_id`); mcp-auth-guard 1.0.0 put the raw key into the
principal's claims, where every log and record could see it.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from guard._settings import flag
from guard.identity._common import (
    LOG,
    MISSING_CREDENTIALS,
    bearer_token,
    digest_fingerprint,
    fail,
    header_name,
    header_text,
    refuse_repeated,
)
from guard.identity.base import RequestInfo
from guard.policy.model import Principal

__all__ = ["ApiKeyAuthenticator", "hash_api_key"]

_DIGEST: Final = re.compile(r"^sha256:([0-9a-fA-F]{64})$")
_MAX_KEY_BYTES: Final = 1024
_DEFAULT_ROLES: Final = ("api_user",)  # mcp-auth-guard's role for a key with no mapping
_NOT_HEADER_TEXT: Final = (
    "an API key must be printable ASCII: HTTP header values are bytes, and a key with "
    "other characters matches only the clients that happen to encode it as latin-1"
)


def hash_api_key(key: str) -> str:
    """Return the `sha256:<hex>` form of a key, for configuration files that must not hold keys.

    Example:
        ```python
        from guard.identity import hash_api_key

        assert hash_api_key("user-key-123").startswith("sha256:")
        ```

    Raises:
        ValueError: the key is not printable ASCII (no header could carry it reliably).
    """
    if not header_text(key):
        raise ValueError(_NOT_HEADER_TEXT)
    return "sha256:" + hashlib.sha256(key.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class _Entry:
    digest: bytes
    key_id: str
    user_id: str
    roles: tuple[str, ...]
    agent_id: str | None


def _load_text(text: str, origin: str) -> Any:
    import yaml  # YAML is a superset of JSON: one parser reads both

    from guard.policy._request_form import duplicate_keys, load_yaml

    try:
        document = load_yaml(text)
    except yaml.YAMLError:
        raise ValueError(f"{origin}: not valid YAML/JSON") from None
    # `yaml.safe_load` keeps the last of a repeated key silently: one key written twice
    # would stand for whichever identity came last. Named by line: the key is a secret.
    for _, _, line, _ in duplicate_keys(document):
        raise ValueError(f"{origin}: line {line}: a key is written twice in one mapping")
    return document


class ApiKeyAuthenticator:
    """Authenticates callers by an API key in one header (default `X-API-Key`).

    Keys come from `keys` (a mapping), `file` (YAML or JSON) and/or `env` (the name of an
    environment variable holding YAML or JSON), each in one of these forms:

    - `{key: [roles]}`: mcp-auth-guard's `api_key_roles`;
    - `{key: {"user_id": ..., "roles": [...], "agent_id": ...}}`;
    - `[key, ...]`: mcp-auth-guard's `api_keys` (roles `["api_user"]`);
    - a file or a variable may also wrap any of them as `{"keys": ...}` (a mapping given
      as `keys` never is: `{"keys": ["admin"]}` there is the key `keys`, role admin).

    A key may be written as `sha256:<hex>` (see `hash_api_key`) instead of in plain text.
    A key is printable ASCII: header values travel as bytes, and any other character would
    match only the clients that happen to encode it as the server decodes it (latin-1).
    A key without a user id is named after its fingerprint: `api-key:<key_id>`.
    A request costs one SHA-256 and one lookup, whatever the number of keys
    (`benchmarks/bench_identity.py`).

    Args:
        header: the one header read. A key sent anywhere else (`Authorization: Bearer ...`)
            is not looked at (`missing_credentials`), unless `accept_bearer=True`.
        key_id_secret: makes `key_id` an HMAC, so weak keys cannot be guessed from it.
        agent_id_header: where the agent id comes from when the key's entry names none:
            the caller's own claim (self-declared, as in mcp-auth-guard); None ignores it.

    Example:
        ```python
        from guard.identity import ApiKeyAuthenticator, hash_api_key

        auth = ApiKeyAuthenticator({
            "user-key-123": ["user"],
            hash_api_key("admin-key-456"): {"user_id": "ops", "roles": ["admin"]},
        })
        ```
    """

    method = "api_key"

    def __init__(
        self,
        keys: Mapping[str, Any] | Iterable[str] | None = None,
        *,
        file: str | Path | None = None,
        env: str | None = None,
        header: str = "X-API-Key",
        accept_bearer: bool = False,
        key_id_secret: str | bytes | None = None,
        agent_id_header: str | None = "x-agent-id",
    ) -> None:
        self.header = header_name("header", header)
        self.accept_bearer = flag("accept_bearer", accept_bearer)
        self.agent_id_header = agent_id_header.lower() if agent_id_header else None
        read = (self.header, self.agent_id_header, "authorization" if accept_bearer else None)
        self._read = frozenset(h for h in read if h)
        if key_id_secret is not None and not isinstance(key_id_secret, str | bytes):
            raise TypeError(
                f"key_id_secret must be a string or bytes, not {type(key_id_secret).__name__}"
            )
        if key_id_secret is not None and not key_id_secret:
            # an HMAC keyed with nothing is one anyone computes: key_ids would be guessable
            raise ValueError("key_id_secret must not be empty (or None for no secret)")
        self._secret = key_id_secret.encode() if isinstance(key_id_secret, str) else key_id_secret
        entries: list[_Entry] = []
        if keys is not None:
            entries += self._entries(keys, "keys", wrapped=False)
        if file is not None:
            path = Path(file)
            entries += self._entries(_load_text(path.read_text(), str(path)), str(path))
        if env is not None:
            text = os.environ.get(env)
            if text is None:
                raise ValueError(f"environment variable {env} is not set")
            entries += self._entries(_load_text(text, f"${env}"), f"${env}")
        if not entries:
            raise ValueError("ApiKeyAuthenticator needs at least one key (keys=, file= or env=)")
        digests = [e.digest for e in entries]
        if len(set(digests)) != len(digests):
            raise ValueError("the same API key is configured twice")
        self._entries_t: tuple[_Entry, ...] = tuple(entries)
        self._by_digest: dict[bytes, _Entry] = {e.digest: e for e in entries}

    def _entries(self, source: Any, origin: str, *, wrapped: bool = True) -> list[_Entry]:
        # only a file or a variable may wrap its keys: in code, `{"keys": [...]}` is the
        # key `keys` and its roles (unwrapped, its roles would become guessable keys)
        if wrapped and isinstance(source, Mapping) and set(source) == {"keys"}:
            source = source["keys"]
        if isinstance(source, Mapping):
            items = list(source.items())
        elif isinstance(source, Iterable) and not isinstance(source, str | bytes):
            items = [(k, None) for k in source]
        else:
            raise ValueError(f"{origin}: API keys must be a mapping or a list")
        return [self._entry(k, v, f"{origin}[{i}]") for i, (k, v) in enumerate(items)]

    def _entry(self, key: Any, spec: Any, where: str) -> _Entry:
        # `where` names the position, never the key: configuration errors get logged.
        if not isinstance(key, str) or not key.strip():
            raise ValueError(f"{where}: an API key must be a non-empty string")
        if key != key.strip():
            # HTTP strips it from a header value, and so does `_presented`: never matched
            raise ValueError(
                f"{where}: an API key must not begin or end with whitespace (read from a file?)"
            )
        if not header_text(key):
            raise ValueError(f"{where}: {_NOT_HEADER_TEXT}")
        m = _DIGEST.match(key)
        digest = bytes.fromhex(m.group(1)) if m else hashlib.sha256(key.encode()).digest()
        key_id = digest_fingerprint(digest, self._secret)
        user_id: Any = None
        agent_id: Any = None
        roles: Any = _DEFAULT_ROLES
        if isinstance(spec, Mapping):
            unknown = set(spec) - {"user_id", "roles", "agent_id"}
            if unknown:
                raise ValueError(f"{where}: unknown fields {sorted(unknown)}")
            user_id, agent_id = spec.get("user_id"), spec.get("agent_id")
            roles = spec.get("roles", _DEFAULT_ROLES)
        elif spec is not None:
            roles = spec
        if isinstance(roles, str):
            roles = [roles]
        if not isinstance(roles, list | tuple) or not all(isinstance(r, str) for r in roles):
            raise ValueError(f"{where}: roles must be a list of strings")
        for name, value in (("user_id", user_id), ("agent_id", agent_id)):
            if value is not None and not isinstance(value, str):
                raise ValueError(f"{where}: {name} must be a string")
        return _Entry(digest, key_id, user_id or f"api-key:{key_id}", tuple(roles), agent_id)

    def _presented(self, info: RequestInfo) -> str | None:
        key = info.headers.get(self.header, "").strip()
        if not key and self.accept_bearer:
            key = bearer_token(info.headers) or ""
        return key or None

    async def authenticate(self, info: RequestInfo) -> Principal:
        """Map the presented key to its principal.

        Raises:
            AuthenticationError: `missing_credentials` (no key in the configured header),
                `ambiguous_credentials` (a header read sent twice) or `invalid_api_key`.
        """
        refuse_repeated(info.repeated, self._read)
        key = self._presented(info)
        if key is None:
            raise fail(MISSING_CREDENTIALS, f"no API key in {self.header}")
        if len(key) > _MAX_KEY_BYTES:
            raise fail("invalid_api_key", "API key too long")
        presented = hashlib.sha256(key.encode()).digest()
        # Looked up by digest: timing can only reveal facts about SHA-256(presented key).
        found = self._by_digest.get(presented)
        if found is None or not hmac.compare_digest(found.digest, presented):
            unknown_id = digest_fingerprint(presented, self._secret)
            raise fail("invalid_api_key", "unknown API key", unknown_id)
        agent = found.agent_id
        if agent is None and self.agent_id_header:
            agent = info.headers.get(self.agent_id_header)
        if LOG.isEnabledFor(logging.DEBUG):
            LOG.debug("authenticated: method=api_key key_id=%s", found.key_id)
        return Principal(
            user_id=found.user_id,
            roles=found.roles,
            agent_id=agent,
            authenticated=True,
            auth_method=self.method,
            key_id=found.key_id,
        )

    @property
    def key_ids(self) -> tuple[str, ...]:
        """Fingerprints of the configured keys (safe to print)."""
        return tuple(e.key_id for e in self._entries_t)
