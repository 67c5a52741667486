"""Bearer JWTs verified with pyjwt, against an algorithm allow-list fixed at configuration.

The allow-list is never taken from the token: a token's `alg` header only selects among the
algorithms configured, and each algorithm must fit the key's type. That closes the classic
attacks: `alg: none`, and an HS256 token "signed" with the server's RSA public key as the
HMAC secret (the key confusion that broke many JWT libraries). Likewise keys come only from
configuration: a token's `jku`, `x5u` or `jwk` header is never followed or trusted. A
token listing a critical extension (`crit`) other than `b64` is refused (`invalid_token`).
A token's shape is checked before pyjwt reads it, and a refused token's header and payload
after, so what is `malformed_token` does not depend on which pyjwt is installed.

Failure reasons: `missing_credentials`, `ambiguous_credentials`, `token_too_large`,
`malformed_token`, `disallowed_algorithm`, `unknown_kid`, `jwks_unavailable`,
`invalid_signature`, `expired`, `not_yet_valid`, `invalid_audience`, `invalid_issuer`,
`missing_claim`, `invalid_claims`, `invalid_token` (anything else pyjwt refuses).
"""

from __future__ import annotations

import base64
import contextlib
import json
import logging
import warnings
from collections.abc import Mapping, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any, Final

import jwt
from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa
from cryptography.hazmat.primitives.serialization import load_der_public_key, load_pem_public_key

from guard._settings import flag, one_or_more, seconds, whole
from guard.identity._common import (
    LOG,
    MISSING_CREDENTIALS,
    bearer_token,
    fail,
    fingerprint,
    header_name,
    refuse_repeated,
)
from guard.identity.base import RequestInfo
from guard.identity.claims import DEFAULT_CLAIMS, ClaimMapping
from guard.identity.jwks import JWKSKeys, VerificationKey
from guard.policy.model import Principal

__all__ = ["ALGORITHMS", "JWTAuthenticator"]

# algorithm -> (key type, EC curve name or None)
ALGORITHMS: Final[Mapping[str, tuple[str, str | None]]] = {
    "HS256": ("oct", None),
    "HS384": ("oct", None),
    "HS512": ("oct", None),
    "RS256": ("RSA", None),
    "RS384": ("RSA", None),
    "RS512": ("RSA", None),
    "PS256": ("RSA", None),
    "PS384": ("RSA", None),
    "PS512": ("RSA", None),
    "ES256": ("EC", "secp256r1"),
    "ES384": ("EC", "secp384r1"),
    "ES512": ("EC", "secp521r1"),
    "EdDSA": ("OKP", None),
}
_DEFAULT_FOR: Final = {"oct": ("HS256",), "RSA": ("RS256",), "EC": ("ES256",), "OKP": ("EdDSA",)}
_JWKS_DEFAULT: Final = ("RS256", "PS256", "ES256", "EdDSA")
_CRITICAL_UNDERSTOOD: Final = frozenset({"b64"})  # RFC 7797, which pyjwt implements
_HMAC_MIN_BYTES: Final = {"HS256": 32, "HS384": 48, "HS512": 64}  # RFC 7518 section 3.2
# pyjwt warns of a short HMAC secret on every decode from 2.11.0 on; 2.10 has no such warning
_SHORT_KEY_WARNING: Final[type[Warning] | None] = getattr(jwt, "InsecureKeyLengthWarning", None)

_BASE64URL: Final = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
_BASE64URL_BYTES: Final = _BASE64URL.encode()
# The characters a segment can end with, by its length % 4: a last character carrying bits
# past the final byte (or standing alone) is another spelling of the same token, not its own.
_LAST: Final = (_BASE64URL, "", _BASE64URL[::16], _BASE64URL[::4])

# pyjwt's exceptions, most specific first (InvalidSignatureError is a DecodeError).
_REASONS: Final[tuple[tuple[type[Exception], str], ...]] = (
    (jwt.ExpiredSignatureError, "expired"),
    (jwt.ImmatureSignatureError, "not_yet_valid"),
    (jwt.InvalidAudienceError, "invalid_audience"),
    (jwt.InvalidIssuerError, "invalid_issuer"),
    (jwt.MissingRequiredClaimError, "missing_claim"),
    (jwt.InvalidIssuedAtError, "invalid_claims"),
    (jwt.InvalidSignatureError, "invalid_signature"),
    (jwt.InvalidAlgorithmError, "disallowed_algorithm"),
    (jwt.InvalidKeyError, "disallowed_algorithm"),
    (jwt.DecodeError, "malformed_token"),
)
# pyjwt's own words are kept for claim checks only, which name a claim, never its value;
# another message may quote the token (2.15 names a `crit` extension the token lists).
_WORDED: Final[tuple[type[Exception], ...]] = (
    jwt.ExpiredSignatureError,
    jwt.ImmatureSignatureError,
    jwt.InvalidAudienceError,
    jwt.InvalidIssuerError,
    jwt.MissingRequiredClaimError,
    jwt.InvalidIssuedAtError,
    jwt.exceptions.InvalidSubjectError,
    jwt.exceptions.InvalidJTIError,
)


def _key_type(key: Any) -> tuple[str, str | None]:
    if isinstance(key, bytes | str):
        return "oct", None
    if isinstance(key, rsa.RSAPublicKey | rsa.RSAPrivateKey):
        return "RSA", None
    if isinstance(key, ec.EllipticCurvePublicKey | ec.EllipticCurvePrivateKey):
        return "EC", key.curve.name
    if isinstance(key, ed25519.Ed25519PublicKey | ed448.Ed448PublicKey):
        return "OKP", None
    raise ValueError(f"unsupported key type {type(key).__name__}")


def _load_pem(pem: str | bytes | Path) -> Any:
    data = pem.read_bytes() if isinstance(pem, Path) else pem
    raw = data.encode() if isinstance(data, str) else data
    if b"-----BEGIN CERTIFICATE-----" in raw:
        return x509.load_pem_x509_certificate(raw).public_key()
    if b"PRIVATE KEY-----" in raw:
        raise ValueError("public_key= must be a public key or certificate, not a private key")
    if b"-----BEGIN" not in raw:
        der = _der_public_key(raw)
        if der is not None:
            return der
    return load_pem_public_key(raw)


def _der_public_key(raw: bytes) -> Any:
    """The public key `raw` holds in DER (a SubjectPublicKeyInfo or a certificate), else None."""
    try:
        return load_der_public_key(raw)
    except (ValueError, UnsupportedAlgorithm):
        pass
    try:
        return x509.load_der_x509_certificate(raw).public_key()
    except (ValueError, UnsupportedAlgorithm):
        return None


_SSH_PREFIXES: Final = (
    b"ssh-rsa",
    b"ssh-dss",
    b"ssh-ed25519",
    b"ssh-ed448",
    b"ecdsa-sha2-",
    b"sk-ssh-ed25519@openssh.com",
    b"sk-ecdsa-sha2-",
)


def _der_in_text(secret: bytes) -> list[bytes]:
    """What `secret` holds if it is DER written as text: base64 (a PEM body without its
    armor, as Keycloak shows a realm's key), base64url or hex; whitespace ignored."""
    text = b"".join(secret.removeprefix(b"\xef\xbb\xbf").split())
    found = []
    for decode in (base64.b64decode, base64.urlsafe_b64decode):
        with contextlib.suppress(ValueError):  # binascii.Error is a ValueError
            found.append(decode(text + b"=" * (-len(text) % 4)))
    with contextlib.suppress(ValueError):  # UnicodeDecodeError is a ValueError
        found.append(bytes.fromhex(text.decode("ascii")))
    return found


def _looks_like_key(secret: bytes) -> bool:
    """Whether an HMAC `secret` is really a key, in any form keys travel in.

    A public key is public: used as an HMAC secret, it lets anyone sign tokens. Checked
    here, not left to pyjwt: pyjwt 2.10 takes a DER key (also as base64 or hex text) or a
    JWK's JSON text as an HMAC secret without a word. PEM is looked for anywhere (a BOM,
    or `openssl x509 -text` output, often comes first).
    """
    if b"-----BEGIN" in secret:
        return True
    if secret.removeprefix(b"\xef\xbb\xbf").lstrip().startswith(_SSH_PREFIXES):
        return True
    if any(_der_public_key(der) is not None for der in (secret, *_der_in_text(secret))):
        return True
    try:
        document = json.loads(secret.decode("utf-8-sig"))
    except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError
        return False
    return isinstance(document, dict) and ("kty" in document or "keys" in document)


def _compact(token: str) -> bool:
    """Whether `token` is shaped as a compact JWS (RFC 7515 section 7.1): three base64url
    segments, unpadded, each the one encoding of its bytes; only the signature may be empty
    (an unsecured JWT, RFC 7519 section 6.1: refused for its algorithm, not its shape).

    Checked here, not left to pyjwt: 2.10.1 decodes leniently (a valid token with `=` or
    `é` appended passed, junk characters read as missing), 2.15 refuses junk but takes
    padding; a wrong segment count is a decode error in one and a bad signature in another.
    On the hot path, so no regex: deleting the alphabet must leave exactly the two dots.
    """
    if not token.isascii() or token.encode().translate(None, _BASE64URL_BYTES) != b"..":
        return False
    header, payload, signature = token.split(".")
    return (
        bool(header and payload)
        and header[-1] in _LAST[len(header) % 4]
        and payload[-1] in _LAST[len(payload) % 4]
        and signature[-1:] in _LAST[len(signature) % 4]
    )


def _json_object(segment: str) -> dict[str, Any] | None:
    """The JSON object a base64url `segment` holds, else None: not JSON, not an object, or
    nested too deep to read (json's RecursionError, which pyjwt 2.10.1 let through)."""
    try:
        value = json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))
    except (ValueError, RecursionError):  # binascii.Error, UnicodeDecodeError are ValueErrors
        return None
    return value if isinstance(value, dict) else None


def _objects(token: str) -> bool:
    """Whether a compact `token`'s header and payload are both JSON objects."""
    header, payload, _ = token.split(".")
    return _json_object(header) is not None and _json_object(payload) is not None


def _check_critical(header: Mapping[str, Any]) -> None:
    """Refuse a token listing an extension this recipient does not understand (RFC 7515
    section 4.1.11). Checked here, not left to pyjwt: pyjwt 2.10 ignores `crit`, taking a
    token its issuer meant only for recipients that enforce some extension as a plain one.
    `b64` is the one extension pyjwt implements; the names are not quoted (caller's text)."""
    crit = header["crit"]
    if not isinstance(crit, list) or not crit or not all(isinstance(c, str) for c in crit):
        raise jwt.InvalidTokenError("Invalid 'crit' header: must be a non-empty list of names")
    if any(c not in _CRITICAL_UNDERSTOOD or c not in header for c in crit):
        raise jwt.InvalidTokenError("Unsupported or missing critical extension")


def _default_for(key_type: tuple[str, str | None]) -> tuple[str, ...]:
    """The one algorithm a key implies: an EC key's is its curve's (ES384 for P-384)."""
    curve_alg = [alg for alg, fit in ALGORITHMS.items() if key_type[1] and fit == key_type]
    return tuple(curve_alg[:1]) or _DEFAULT_FOR[key_type[0]]


def _verifies(key: VerificationKey, alg: str) -> bool:
    """Whether JWK `key` can verify a signature made with `alg`: its type fits, and it
    pins no other algorithm."""
    try:
        fits = _fits(alg, _key_type(key.key))
    except ValueError:
        return False
    return fits and (key.alg is None or key.alg == alg)


def _fits(alg: str, key_type: tuple[str, str | None]) -> bool:
    kty, curve = ALGORITHMS[alg]
    return kty == key_type[0] and (curve is None or curve == key_type[1])


class JWTAuthenticator:
    """Authenticates `Authorization: Bearer <JWT>` callers.

    Exactly one key source: `secret` (HMAC; a public key in any form is refused there),
    `public_key` (a public key or certificate in PEM or DER: text, bytes or a `Path`),
    `jwks` (a JWKS mapping), `jwks_file` or `jwks_url`.

    Args:
        algorithms: the allow-list; defaults to the one algorithm the key type implies
            (`HS256`, `RS256`, `ES256` / `ES384` / `ES512` by curve, `EdDSA`;
            RS256/PS256/ES256/EdDSA for a JWKS).
        audience: accepted `aud` value(s). A token carrying `aud` is refused when none is set.
        issuer: accepted `iss` value(s).
        leeway: seconds (or a `timedelta`) of clock skew tolerated for `exp`, `nbf` and
            `iat`: a finite number `>= 0` (NaN or infinity would let expired tokens in).
        required_claims: claims every token must carry (`exp` is required unless
            `require_exp=False`).
        user_id_claim, roles_claim, agent_id_claims: where the principal's fields come from
            (dotted paths; see `ClaimMapping`).
        claims: claims kept on `Principal.claims` (required claims are kept too).
        header: header carrying the token; `Authorization` expects the `Bearer` scheme,
            another header may carry the bare token.
        agent_id_header: fallback for the agent id when no claim names one (self-declared).
        max_token_bytes: longer tokens are refused before parsing (`token_too_large`).
        jwks_min_refresh_interval, jwks_cache_ttl, jwks_max_stale, jwks_timeout: a key
            set URL's fetching (`JWKSKeys`' `min_refresh_interval`, `cache_ttl`,
            `max_stale`, `timeout`).

    Example:
        ```python
        from guard.identity import JWTAuthenticator

        auth = JWTAuthenticator(secret="s3cret-at-least-32-bytes-long-000", audience="mcp")
        ```
    """

    method = "jwt"

    def __init__(
        self,
        secret: str | bytes | None = None,
        *,
        public_key: str | bytes | Path | None = None,
        jwks: Mapping[str, Any] | None = None,
        jwks_file: str | Path | None = None,
        jwks_url: str | None = None,
        algorithms: Sequence[str] | None = None,
        audience: str | Sequence[str] | None = None,
        issuer: str | Sequence[str] | None = None,
        leeway: float | timedelta = 30.0,
        required_claims: str | Sequence[str] = (),
        require_exp: bool = True,
        user_id_claim: str = "sub",
        roles_claim: str | Sequence[str] = "roles",
        agent_id_claims: str | Sequence[str] = ("azp", "client_id", "agent_id"),
        claims: str | Sequence[str] = DEFAULT_CLAIMS,
        header: str = "authorization",
        agent_id_header: str | None = "x-agent-id",
        max_token_bytes: int = 8192,
        jwks_min_refresh_interval: float = 30.0,
        jwks_cache_ttl: float = 3600.0,
        jwks_max_stale: float = 86400.0,
        jwks_timeout: float = 5.0,
    ) -> None:
        sources = [s for s in (secret, public_key, jwks, jwks_file, jwks_url) if s is not None]
        if len(sources) != 1:
            raise ValueError(
                "JWTAuthenticator needs exactly one key source: secret=, public_key=, "
                "jwks=, jwks_file= or jwks_url="
            )
        self._static: Any = None
        self._jwks: JWKSKeys | None = None
        if secret is not None:
            if not secret:
                raise ValueError("JWT secret must not be empty")
            self._static = secret.encode() if isinstance(secret, str) else secret
            if _looks_like_key(self._static):
                # A public key used as an HMAC secret lets anyone who has it sign tokens.
                raise ValueError(
                    "secret= looks like a public key (PEM, DER, SSH or JWK); pass it as "
                    "public_key= (PEM, DER) or jwks= (JWK)"
                )
        elif public_key is not None:
            self._static = _load_pem(public_key)
        else:
            self._jwks = JWKSKeys(
                url=jwks_url,
                path=jwks_file,
                jwks=jwks,
                min_refresh_interval=jwks_min_refresh_interval,
                cache_ttl=jwks_cache_ttl,
                max_stale=jwks_max_stale,
                timeout=jwks_timeout,
            )
        key_type = _key_type(self._static) if self._static is not None else None
        if algorithms is None:
            algorithms = _default_for(key_type) if key_type else _JWKS_DEFAULT
        if isinstance(algorithms, str):
            algorithms = (algorithms,)
        for alg in algorithms:
            if alg not in ALGORITHMS:
                raise ValueError(f"unsupported JWT algorithm {alg!r}; use one of {[*ALGORITHMS]}")
            if key_type is not None and not _fits(alg, key_type):
                # An HS* algorithm next to a public key is exactly the key-confusion hole.
                raise ValueError(f"algorithm {alg} does not fit a {key_type[0]} key")
        if not algorithms:
            raise ValueError("the JWT algorithm allow-list must not be empty")
        self.algorithms: frozenset[str] = frozenset(algorithms)
        self._algorithm_list = sorted(self.algorithms)
        self._short_secret = isinstance(self._static, bytes) and any(
            len(self._static) < _HMAC_MIN_BYTES.get(alg, 0) for alg in self.algorithms
        )
        if self._short_secret:
            # Said once here; pyjwt would otherwise warn on every request.
            LOG.warning(
                "JWT secret is shorter than RFC 7518 recommends for %s",
                ", ".join(sorted(self.algorithms)),
            )
        for name, accepted in (("audience", audience), ("issuer", issuer)):
            values = (accepted,) if isinstance(accepted, str) else accepted
            if values is not None and (
                not values or any(isinstance(v, str) and not v.strip() for v in values)
            ):
                # an unset variable, most likely: it would refuse every token, or take `""`
                raise ValueError(f"{name} must name at least one value, none of them empty")
        self.audience = audience
        self.issuer = issuer
        # Checked here, exactly: pyjwt 2.10.0 matched a str issuer as a substring (`iss: ""`
        # passed), and 2.8/2.9 never matched a list: whatever pyjwt is installed, this holds.
        issuers = (issuer,) if isinstance(issuer, str) else issuer
        if issuers is not None and not all(isinstance(i, str) for i in issuers):
            raise ValueError("issuer must be a string or a list of strings")
        self._issuers = frozenset(issuers) if issuers is not None else None
        # pyjwt compares `exp <= now - leeway`: NaN or infinity would expire nothing
        self.leeway = seconds(
            "leeway", leeway.total_seconds() if isinstance(leeway, timedelta) else leeway
        )
        self.header = header_name("header", header)
        self.agent_id_header = agent_id_header.lower() if agent_id_header else None
        self._read = frozenset(h for h in (self.header, self.agent_id_header) if h)
        self.max_token_bytes = whole("max_token_bytes", max_token_bytes)
        # one string is one claim (as `ClaimMapping(keep=)`), not its letters
        required_claims = one_or_more("required_claims", required_claims)
        claims = one_or_more("claims", claims)
        # `require_exp=""` (an unset variable) would let tokens that never expire in
        require_exp = flag("require_exp", require_exp)
        required = tuple(dict.fromkeys([*(["exp"] if require_exp else []), *required_claims]))
        self._options: dict[str, Any] = {"require": list(required)}
        self.mapping = ClaimMapping(
            user_id=user_id_claim,
            roles=roles_claim,
            agent_id=agent_id_claims,
            keep=tuple(dict.fromkeys([*claims, *required_claims])),
        )

    def _token(self, info: RequestInfo) -> str:
        headers = info.headers
        if self.header == "authorization":
            token = bearer_token(headers)
        else:
            raw = headers.get(self.header, "").strip()
            token = bearer_token(headers, self.header) or (raw if " " not in raw else None)
        if not token:
            raise fail(MISSING_CREDENTIALS, "no bearer token")
        if len(token) > self.max_token_bytes:
            raise fail("token_too_large", f"token longer than {self.max_token_bytes} bytes")
        return token

    async def _keys(self, header: Mapping[str, Any], alg: str) -> tuple[Any, ...]:
        """The keys of the set the token's `kid` names that can verify `alg` (most often
        one; the set may name more alike)."""
        kid = header.get("kid")
        if kid is not None and not isinstance(kid, str):
            raise fail("malformed_token", "token header 'kid' is not a string")
        assert self._jwks is not None
        found = await self._jwks.key(kid)
        keys = tuple(key.key for key in found if _verifies(key, alg))
        if not keys:
            raise fail("disallowed_algorithm", f"{alg} does not fit the key the token names")
        return keys

    def _decode(self, token: str, key: Any, algorithms: list[str]) -> dict[str, Any]:
        decoded = jwt.decode_complete(
            token,
            key,
            algorithms=algorithms,
            audience=self.audience,
            leeway=self.leeway,
            options=self._options,  # type: ignore[arg-type]
        )
        if "crit" in decoded["header"]:
            _check_critical(decoded["header"])
        return dict(decoded["payload"])

    def _decode_with(
        self, token: str, keys: tuple[Any, ...], algorithms: list[str]
    ) -> dict[str, Any]:
        """`_decode` with the first of `keys` whose signature the token carries: another
        key named alike is tried only where one's signature does not verify (any other
        failure is the token's, whichever key signed it)."""
        for key in keys[:-1]:
            try:
                return self._decode(token, key, algorithms)
            except jwt.InvalidSignatureError:
                continue
        return self._decode(token, keys[-1], algorithms)

    async def _keys_and_algorithms(
        self, token: str, key_id: str
    ) -> tuple[tuple[Any, ...], list[str]]:
        if self._jwks is None:
            # Every allowed algorithm fits the one key (checked at construction), so pyjwt
            # can check the header's `alg` against the allow-list itself: one parse, not two.
            return (self._static,), self._algorithm_list
        # Read here, not by pyjwt: 2.10.1 let a deeply nested header's RecursionError out.
        header = _json_object(token.partition(".")[0])
        if header is None:
            raise fail("malformed_token", "token is not a well-formed JWT", key_id)
        alg = header.get("alg")
        if not isinstance(alg, str) or alg not in self.algorithms:
            raise fail("disallowed_algorithm", "token algorithm is not allowed", key_id)
        return await self._keys(header, alg), [alg]

    async def authenticate(self, info: RequestInfo) -> Principal:
        """Verify the request's bearer token and map its claims to a `Principal`.

        Raises:
            AuthenticationError: with one of the failure reasons listed in the module docs.
        """
        refuse_repeated(info.repeated, self._read)
        token = self._token(info)
        key_id = fingerprint(token)
        if not _compact(token):
            raise fail("malformed_token", "token is not a well-formed JWT", key_id)
        keys, algorithms = await self._keys_and_algorithms(token, key_id)
        try:
            if self._short_secret and _SHORT_KEY_WARNING is not None:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", _SHORT_KEY_WARNING)
                    claims = self._decode_with(token, keys, algorithms)
            else:
                claims = self._decode_with(token, keys, algorithms)
        except Exception as exc:
            reason = next((r for t, r in _REASONS if isinstance(exc, t)), "invalid_token")
            if reason != "malformed_token" and not _objects(token):
                # Looked at only once refused, off the hot path: pyjwt checks the signature
                # before the payload, and 2.10.1 let json's RecursionError out unnamed.
                reason = "malformed_token"
            detail = exc if isinstance(exc, _WORDED) and reason != "malformed_token" else reason
            raise fail(reason, f"token rejected: {detail}", key_id) from None
        if self._issuers is not None:
            iss = claims.get("iss")
            if iss is None:
                raise fail("missing_claim", "token rejected: missing the 'iss' claim", key_id)
            if not isinstance(iss, str) or iss not in self._issuers:
                raise fail("invalid_issuer", "token rejected: Invalid issuer", key_id)
        principal = Principal(
            user_id=self.mapping.user_of(claims),
            roles=self.mapping.roles_of(claims),
            agent_id=self.mapping.agent_of(claims)
            or (info.headers.get(self.agent_id_header) if self.agent_id_header else None),
            claims=self.mapping.kept(claims),
            authenticated=True,
            auth_method=self.method,
            key_id=key_id,
        )
        if LOG.isEnabledFor(logging.DEBUG):
            LOG.debug("authenticated: method=jwt key_id=%s", key_id)
        return principal
