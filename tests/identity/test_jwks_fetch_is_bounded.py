"""A JWKS endpoint that answers slowly or without end must not hold or fill the guard.

`JWKSKeys._fetch` (guard/identity/jwks.py) reads the whole body (`response.content`)
before checking `_MAX_JWKS_BYTES`, and `jwks_timeout` is httpx's per-read timeout, not a
deadline for the fetch. Both are checked here against a real HTTP server on 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from typing import Any

import pytest
from identity_kit import KeyPair, bearer, claims, mint

from guard.errors import AuthenticationError
from guard.identity import JWTAuthenticator
from guard.identity.jwks import _MAX_JWKS_BYTES


class _RawServer:
    """An HTTP/1.1 server on 127.0.0.1 whose body is produced by `body(conn)`;
    counts the body bytes the client accepted."""

    def __init__(self, mode: str, jwk: dict[str, Any]) -> None:
        self.mode = mode
        self.jwk = jwk
        self.sent = 0
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}/jwks.json"
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)

    def _serve(self) -> None:
        self.sock.settimeout(0.2)
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            threading.Thread(target=self._answer, args=(conn,), daemon=True).start()

    def _answer(self, conn: socket.socket) -> None:
        try:
            conn.recv(65536)
            doc = json.dumps({"keys": [self.jwk]}).encode()
            if self.mode == "huge":
                # a well-formed JWKS padded with whitespace to 64 MiB, no content-length
                conn.sendall(
                    b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
                    b"connection: close\r\n\r\n"
                )
                conn.sendall(doc[:-1])
                chunk = b" " * 65536
                for _ in range(1024):
                    if self.stop.is_set():
                        break
                    conn.sendall(chunk)
                    self.sent += len(chunk)
                conn.sendall(b"}")
            else:  # "drip": a valid JWKS, one byte every 0.25 s
                conn.sendall(
                    b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
                    + f"content-length: {len(doc)}\r\n\r\n".encode()
                )
                for i in range(len(doc)):
                    if self.stop.is_set():
                        break
                    conn.sendall(doc[i : i + 1])
                    self.sent += 1
                    time.sleep(0.25)
        except OSError:
            pass
        finally:
            conn.close()

    def __enter__(self) -> _RawServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(5)
        self.sock.close()


async def test_oversized_jwks_is_not_downloaded_whole(rsa_key: KeyPair) -> None:
    """A 64 MiB answer should be cut off after about `_MAX_JWKS_BYTES` (1 MiB), not
    buffered in full in the server's memory before being refused."""
    with _RawServer("huge", rsa_key.jwk) as server:
        auth = JWTAuthenticator(jwks_url=server.url, jwks_timeout=10)
        token = mint(claims(), rsa_key.private, "RS256", {"kid": rsa_key.kid})
        with pytest.raises(AuthenticationError) as caught:
            await auth.authenticate(bearer(token))
        assert caught.value.reason == "jwks_unavailable"
        # what the server got out: what the guard read, plus what the two ends' socket
        # buffers took before the guard hung up (a few MiB, the kernel's to choose); a
        # guard reading the whole answer takes all 64
        assert server.sent <= 16 * _MAX_JWKS_BYTES, f"guard read {server.sent >> 20} MiB"


async def test_jwks_timeout_bounds_the_whole_fetch(rsa_key: KeyPair) -> None:
    """`jwks_timeout=1`: an endpoint trickling a byte every 0.25 s must not keep every
    JWT caller waiting far beyond a second (the fetch runs under the key-set lock)."""
    with _RawServer("drip", rsa_key.jwk) as server:
        auth = JWTAuthenticator(jwks_url=server.url, jwks_timeout=1)
        token = mint(claims(), rsa_key.private, "RS256", {"kid": rsa_key.kid})
        start = time.monotonic()
        try:
            await asyncio.wait_for(auth.authenticate(bearer(token)), 15)
            outcome = "accepted"
        except AuthenticationError as exc:
            outcome = exc.reason
        except TimeoutError:
            outcome = "still waiting after 15 s"
        took = time.monotonic() - start
        assert took < 3, f"one fetch with jwks_timeout=1 took {took:.1f}s ({outcome})"
