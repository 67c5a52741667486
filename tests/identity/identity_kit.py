"""Identity test kit: key pairs, token minting, request builders, a JWKS server, a secret scan.

Every credential a test mints goes through `remember()`; `leaks()` finds remembered
credentials, or anything shaped like a JWT, in log lines. `conftest.py` wires the scan
into the session.
"""

from __future__ import annotations

import base64
import json
import logging
import re
import threading
import time
from collections.abc import Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from guard.identity.base import RequestInfo

# --- the secret scan -----------------------------------------------------------------------

SECRETS: set[str] = set()
JWT_SHAPE = re.compile(r"eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]*")


def remember(secret: str) -> str:
    """Register a credential that must never appear in a log line; returns it."""
    if len(secret) >= 8:  # shorter strings would match innocent text
        SECRETS.add(secret)
    return secret


class _Keeper(logging.Handler):
    """Keeps every formatted record of the session (message and traceback text)."""

    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = record.getMessage()
        except Exception:  # a broken log call is not ours to judge here
            text = str(record.msg)
        if record.exc_info and record.exc_info[1] is not None:
            text += f"\n{record.exc_info[1]!r}"
        self.lines.append(f"{record.name}: {text}")


KEEPER = _Keeper()


def masked(line: str) -> str:
    """The line with credentials replaced, safe to print in a failure report."""
    for secret in SECRETS:
        line = line.replace(secret, "<secret>")
    return JWT_SHAPE.sub("<jwt>", line)


def leaks(lines: list[str] | str) -> list[str]:
    """Lines that contain a remembered secret or a JWT."""
    if isinstance(lines, str):
        lines = lines.splitlines()
    secrets = tuple(SECRETS)
    return [ln for ln in lines if JWT_SHAPE.search(ln) or any(s in ln for s in secrets)]


# --- keys and tokens -----------------------------------------------------------------------

HS_SECRET = remember("hs-secret-for-tests-" + "0123456789abcdef" * 3 + "wxyz")


def _pem_public(key: Any) -> bytes:
    return bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )


class KeyPair:
    """A private key for signing and its public half in PEM and JWK form."""

    def __init__(self, private: Any, alg: str, kid: str) -> None:
        self.private = private
        self.alg = alg
        self.kid = kid
        self.public_pem = _pem_public(private)
        jwk = json.loads(jwt.algorithms.get_default_algorithms()[alg].to_jwk(private.public_key()))
        self.jwk: dict[str, Any] = {**jwk, "kid": kid, "use": "sig"}


def rsa_pair(kid: str) -> KeyPair:
    return KeyPair(rsa.generate_private_key(public_exponent=65537, key_size=2048), "RS256", kid)


def ec_pair(kid: str) -> KeyPair:
    return KeyPair(ec.generate_private_key(ec.SECP256R1()), "ES256", kid)


def ed_pair(kid: str) -> KeyPair:
    return KeyPair(ed25519.Ed25519PrivateKey.generate(), "EdDSA", kid)


def claims(**extra: Any) -> dict[str, Any]:
    """Valid claims: a subject, roles, and a lifetime of five minutes from now."""
    now = int(time.time())
    base: dict[str, Any] = {"sub": "alice", "roles": ["user"], "iat": now, "exp": now + 300}
    base.update(extra)
    return {k: v for k, v in base.items() if v is not None}


def mint(
    payload: Mapping[str, Any],
    key: Any = HS_SECRET,
    alg: str = "HS256",
    headers: Mapping[str, Any] | None = None,
) -> str:
    """Sign a token and remember it as a secret."""
    return remember(jwt.encode(dict(payload), key, algorithm=alg, headers=dict(headers or {})))


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def forge(header: Mapping[str, Any], payload: Mapping[str, Any], signature: bytes = b"") -> str:
    """Assemble a token by hand (for attacks no honest library would produce)."""
    parts = [b64url(json.dumps(header).encode()), b64url(json.dumps(payload).encode())]
    return remember(".".join([*parts, b64url(signature)]))


def http(headers: Mapping[str, str] | None = None, host: str = "127.0.0.1") -> RequestInfo:
    """A `RequestInfo` as the middleware builds it for an HTTP request."""
    return RequestInfo(
        transport="http",
        headers={k.lower(): v for k, v in (headers or {}).items()},
        client_host=host,
        session_id="s-1",
    )


def bearer(token: str) -> RequestInfo:
    return http({"Authorization": f"Bearer {token}"})


# --- a JWKS endpoint -----------------------------------------------------------------------


class JWKSServer:
    """Serves a mutable JWKS document on 127.0.0.1 and counts the fetches."""

    def __init__(self) -> None:
        self.keys: list[dict[str, Any]] = []
        self.hits = 0
        self.status = 200
        self.delay = 0.0  # seconds before each answer
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                owner.hits += 1
                time.sleep(owner.delay)
                body = json.dumps({"keys": owner.keys}).encode()
                self.send_response(owner.status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/.well-known/jwks.json"
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)

    def __enter__(self) -> JWKSServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.thread.is_alive():  # idempotent: a test may stop the provider early
            self.httpd.shutdown()
            self.thread.join(5)
        self.httpd.server_close()


# --- talking to a guarded HTTP server ---------------------------------------------------


async def call(url: str, headers: dict[str, str], tool: str) -> str:
    """Call `tool`; return its text, or `denied: <message>`."""
    from fastmcp import Client
    from fastmcp.client.transports import StreamableHttpTransport
    from fastmcp.exceptions import ToolError

    async with Client(StreamableHttpTransport(url, headers=headers)) as client:
        try:
            result = await client.call_tool(
                tool, {"text": "hi"} if tool == "echo" else {"name": "t"}
            )
        except ToolError as exc:
            return f"denied: {exc}"
        return str(result.content[0].text)  # type: ignore[union-attr]


RECORD_COLUMNS = "user_id, auth_method, key_id, allowed, reason, resource, claims"


def records(store: Path, n: int, columns: str = RECORD_COLUMNS) -> list[tuple[Any, ...]]:
    """The store's decisions for tool calls (`columns` of them), waiting for the writer to
    have `n` of them."""
    from guard.audit import open_store

    deadline = time.monotonic() + (20 if n < 99 else 2)
    rows: list[tuple[Any, ...]] = []
    while time.monotonic() < deadline:
        if store.exists():
            with open_store(store) as s:
                rows = s.sql(
                    f"SELECT {columns} FROM decisions WHERE action = 'call' ORDER BY ts"
                ).fetchall()
            if len(rows) >= n:
                return rows
        time.sleep(0.2)
    return rows
