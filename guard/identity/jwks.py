"""Signing keys from a JSON Web Key Set: a file, a mapping, or an identity provider's URL.

Keys rotate: a token signed with a key this process has not seen yet names a new `kid`,
so an unknown `kid` triggers a refresh. Refreshes are rate-limited (`min_refresh_interval`)
because the `kid` comes from the caller: without a bound, anyone could make the server
hammer the identity provider by sending tokens with random `kid`s.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import logging
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Final, NamedTuple
from urllib.parse import urlsplit

import jwt

from guard._settings import seconds
from guard.identity._common import LOG, fail

__all__ = ["JWKSKeys", "VerificationKey"]

_MAX_JWKS_BYTES: Final = 1 << 20


class VerificationKey(NamedTuple):
    """A key ready for pyjwt (`key`: a cryptography key or HMAC bytes) and the `alg` its
    JWK pins, if it pins one."""

    key: Any
    alg: str | None


def _check_url(url: str) -> None:
    """A key set comes over https, or plain http from this machine only: anyone on the
    path of a plain-HTTP fetch could hand the server their own signing key."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme == "https" and parts.hostname:
        return
    if scheme == "http" and _is_local(parts.hostname):
        return
    raise ValueError(
        f"JWKS url must be https (plain http only to this machine): {_redacted(url)!r}"
    )


def _is_local(host: str | None) -> bool:
    if host is None:
        return False
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:  # a name: only `localhost` is known to stay on this machine
        return False


def _redacted(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname}{f':{parts.port}' if parts.port else ''}{parts.path}"


class _HideURLCredentials(logging.Filter):
    """On the `httpx` logger: its `HTTP Request: GET <url> ...` line (INFO) names a JWKS
    URL by its redacted form when the URL carries a query or user info, which may hold a
    credential (`?client_secret=...`)."""

    def __init__(self) -> None:
        super().__init__()
        self.endpoints: set[str] = set()  # redacted forms of such URLs

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(self._shown(a) for a in record.args)
        return True

    def _shown(self, arg: Any) -> Any:
        if isinstance(arg, bytes | int | float):
            return arg
        text = str(arg)  # httpx passes an `httpx.URL`
        if "://" not in text or ("?" not in text and "@" not in text):
            return arg
        try:
            shown = _redacted(text)
        except ValueError:
            return arg
        return shown if shown in self.endpoints else arg


_HIDE_URL_CREDENTIALS: Final = _HideURLCredentials()


def _hide_in_http_logs(url: str) -> None:
    parts = urlsplit(url)
    if parts.query or parts.username or parts.password:
        _HIDE_URL_CREDENTIALS.endpoints.add(_redacted(url))
        logger = logging.getLogger("httpx")
        if _HIDE_URL_CREDENTIALS not in logger.filters:
            logger.addFilter(_HIDE_URL_CREDENTIALS)


def _parse(document: Any, origin: str) -> dict[str | None, tuple[VerificationKey, ...]]:
    """The set's signing keys by `kid`. Keys sharing a `kid` (an RSA and an EC key named
    alike, a key re-issued under its old name) are all kept, in the set's order: a token
    naming that kid may have been signed by any of them."""
    if not isinstance(document, Mapping) or not isinstance(document.get("keys"), list):
        raise ValueError(f"{origin}: a JWKS is an object with a 'keys' list")
    keys: dict[str | None, tuple[VerificationKey, ...]] = {}
    for entry in document["keys"]:
        if not isinstance(entry, Mapping) or entry.get("use", "sig") != "sig":
            continue  # encryption keys never verify signatures
        alg, kid = entry.get("alg"), entry.get("kid")
        if (alg is not None and not isinstance(alg, str)) or (
            kid is not None and not isinstance(kid, str)
        ):
            continue  # a list or object as `kid` cannot even be looked up: skip, not fail
        try:
            key = jwt.PyJWK(dict(entry))
        except Exception as exc:  # unknown kty/crv, `alg: none` (NotImplementedError), ...
            # one unusable key must not hide the others
            LOG.info("JWKS key %r skipped: %s", kid, type(exc).__name__)
            continue
        keys[kid] = (*keys.get(kid, ()), VerificationKey(key.key, alg))
    return keys


class JWKSKeys:
    """A cached, rate-limited set of verification keys.

    Args:
        url: the provider's `jwks_uri`, fetched with httpx.
        path: a JWKS file (read once; `refresh` re-reads it).
        jwks: a JWKS document already in memory.
        min_refresh_interval: fewest seconds between two fetches, whatever callers send.
        cache_ttl: seconds after which the set is fetched again on next use.
        max_stale: seconds past `cache_ttl` that the cached keys still serve while the set
            cannot be fetched; then callers are refused (`jwks_unavailable`): a key the
            provider revoked must not verify tokens for as long as it stays unreachable.
        timeout: seconds allowed for one fetch.

    Each time is a finite number of seconds, `>= 0` (`timeout`: `> 0`).

    Example:
        ```python
        from guard.identity import JWKSKeys

        keys = JWKSKeys(jwks={"keys": [{"kty": "oct", "kid": "k1", "k": "c2VjcmV0"}]})
        ```
    """

    def __init__(
        self,
        *,
        url: str | None = None,
        path: str | Path | None = None,
        jwks: Mapping[str, Any] | None = None,
        min_refresh_interval: float = 30.0,
        cache_ttl: float = 3600.0,
        max_stale: float = 86400.0,
        timeout: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if sum(x is not None for x in (url, path, jwks)) != 1:
            raise ValueError("JWKSKeys needs exactly one of url=, path= or jwks=")
        if url is not None:
            _check_url(url)
        self.url = url
        self.path = Path(path) if path is not None else None
        # what logs name: no query string or user info, which could carry a credential
        self._where = str(self.path) if self.path is not None else _redacted(url or "jwks")
        if url is not None:
            _hide_in_http_logs(url)
        # NaN or infinity compares False: no rate limit, keys never refreshed or dropped
        self.min_refresh_interval = seconds("min_refresh_interval", min_refresh_interval)
        self.cache_ttl = seconds("cache_ttl", cache_ttl)
        self.max_stale = seconds("max_stale", max_stale)
        self.timeout = seconds("timeout", timeout, positive=True)
        self._clock = clock
        self._lock = asyncio.Lock()
        self._pending: asyncio.Future[None] | None = None  # the fetch under way, if any
        self._keys: dict[str | None, tuple[VerificationKey, ...]] = {}
        self._fetched_at: float | None = None  # last successful read: decides staleness
        self._attempted_at: float | None = None  # last read, failed or not: bounds the rate
        self._failed = False
        if jwks is not None:
            self._keys = _parse(jwks, "jwks")
        elif self.path is not None:
            # A broken file is a configuration error: say so at startup, not per request.
            self._keys = self._read_file()
            self._fetched_at = self._attempted_at = clock()

    def _read_file(self) -> dict[str | None, tuple[VerificationKey, ...]]:
        assert self.path is not None
        return _parse(json.loads(self.path.read_text()), str(self.path))

    async def _fetch(self) -> dict[str | None, tuple[VerificationKey, ...]]:
        if self.path is not None:
            return self._read_file()
        import httpx  # only deployments that use a JWKS URL pay for the import

        assert self.url is not None
        url = self.url

        async def fetch() -> bytes:
            # streamed, so a huge document is refused at the limit, not read whole first
            async with (
                httpx.AsyncClient(timeout=self.timeout, follow_redirects=False) as client,
                client.stream("GET", url, headers={"accept": "application/json"}) as response,
            ):
                response.raise_for_status()
                declared = response.headers.get("content-length", "")
                if declared.isdigit() and int(declared) > _MAX_JWKS_BYTES:
                    raise ValueError("JWKS document too large")
                body = bytearray()
                async for chunk in response.aiter_bytes():
                    body += chunk
                    if len(body) > _MAX_JWKS_BYTES:
                        raise ValueError("JWKS document too large")
                return bytes(body)

        # `timeout` bounds the whole fetch: httpx's bounds each read, and a provider (or
        # anyone on the path) sending a byte at a time would hold the key set's lock
        body = await asyncio.wait_for(fetch(), self.timeout)
        return _parse(json.loads(body), self._where)

    async def _refresh(self) -> None:
        async with self._lock:
            pending = self._pending
            if pending is None or pending.get_loop() is not asyncio.get_running_loop():
                now = self._clock()
                last = self._attempted_at
                if last is not None and now - last < self.min_refresh_interval:
                    return  # fetched recently (maybe by a request this one waited behind)
                self._attempted_at = now
                pending = self._pending = asyncio.ensure_future(self._fetch_keys(now))
            # The fetch outlives a request cancelled while it runs (its client timed out or
            # left): it took the refresh slot, and the requests waiting behind it would
            # otherwise find no keys, refused for `min_refresh_interval`.
            await asyncio.shield(pending)

    async def _fetch_keys(self, now: float) -> None:
        try:
            keys = await self._fetch()
        except Exception as exc:
            self._failed = True
            LOG.warning("JWKS fetch from %s failed: %s", self._where, type(exc).__name__)
            return
        finally:
            self._pending = None
        self._keys, self._fetched_at, self._failed = keys, now, False
        LOG.debug("JWKS from %s: %d signing keys", self._where, sum(map(len, keys.values())))

    async def key(self, kid: str | None) -> tuple[VerificationKey, ...]:
        """Return the keys a token's `kid` names (one, unless the set names several alike),
        refreshing the set (rate-limited) if needed. A token without a `kid` names the
        set's only key; in a set of more, none.

        Raises:
            AuthenticationError: `unknown_kid` or `jwks_unavailable`.
        """
        refreshable = self.url is not None or self.path is not None
        if refreshable and (
            self._fetched_at is None or self._clock() - self._fetched_at >= self.cache_ttl
        ):
            await self._refresh()
            fetched = self._fetched_at
            if fetched is not None and self._clock() - fetched >= self.cache_ttl + self.max_stale:
                self._keys = {}  # too stale to trust: refused until a fetch succeeds
        found = self._lookup(kid)
        if found is None and refreshable:
            await self._refresh()
            found = self._lookup(kid)
        if found is None:
            if self._failed:
                raise fail("jwks_unavailable", "signing keys could not be fetched")
            raise fail("unknown_kid", "token names a key that is not in the key set")
        return found

    def _lookup(self, kid: str | None) -> tuple[VerificationKey, ...] | None:
        keys = self._keys
        if kid is None:
            # Without a kid only an unambiguous one-key set can be used (two keys without
            # a kid are two keys, not one).
            if len(keys) != 1:
                return None
            (only,) = keys.values()
            return only if len(only) == 1 else None
        return keys.get(kid)
