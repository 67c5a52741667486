"""A token whose segments hold junk is `malformed_token`, whichever pyjwt `pyproject.toml`
lets in, and its refusal never quotes it (found in review).

pyjwt 2.10.1, the lowest the project allows, decodes a segment leniently: a valid token with
`=` or `é` appended passed, and junk inside a segment was skipped, leaving a bad signature.
2.15 refuses junk but takes padding. The guard checks a token's shape before pyjwt reads
it; the tests run with 2.10.1's segment decoding put in place of the installed one too.
A header or payload that is not a JSON object is malformed too, found by the guard: pyjwt
checks the signature first (a bad one hid the payload), and 2.10.1 let a deeply nested
header's RecursionError out of `authenticate` (a key set's tokens, at the default size).
Every token starts as a real one, signed by pyjwt, then is mangled.
"""

from __future__ import annotations

import asyncio
import binascii
from collections.abc import Callable

import jwt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from identity_kit import HS_SECRET, KEEPER, KeyPair, b64url, bearer, claims, mint, remember
from jwt.utils import base64url_decode

from guard.errors import AuthenticationError
from guard.identity import JWTAuthenticator

BASE64URL = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
PARTS = ("header", "payload", "signature")


def lenient_segments(patch: pytest.MonkeyPatch) -> None:
    """Put pyjwt 2.10.1's segment decoding in place: padding added, nothing else checked."""

    def decode(segment: bytes, name: str) -> bytes:
        try:
            return base64url_decode(segment)
        except (TypeError, binascii.Error) as err:
            raise jwt.DecodeError(f"Invalid {name} padding") from err

    # absent from 2.10.1 itself, which decodes inline: setting it there changes nothing
    patch.setattr(
        jwt.api_jws.PyJWS, "_decode_base64url_segment", staticmethod(decode), raising=False
    )


@pytest.fixture(params=["2.10.1", "now"])
def pyjwt_segments(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    if request.param == "2.10.1":
        lenient_segments(monkeypatch)
    return str(request.param)


def signed(kind: str, rsa_key: KeyPair, **options: int) -> tuple[JWTAuthenticator, str]:
    """An authenticator and a token it accepts: HS256 with a secret, or RS256 from a key set
    (whose header the guard reads before pyjwt does)."""
    if kind == "secret":
        return JWTAuthenticator(secret=HS_SECRET, **options), mint(claims())
    auth = JWTAuthenticator(jwks={"keys": [rsa_key.jwk]}, **options)
    return auth, mint(claims(), rsa_key.private, "RS256", {"kid": rsa_key.kid})


def resigned(kind: str, rsa_key: KeyPair, payload: bytes) -> str:
    """A token pyjwt signs over these payload bytes as they are: its signature holds."""
    if kind == "secret":
        return remember(jwt.api_jws.encode(payload, HS_SECRET, algorithm="HS256"))
    key, kid = rsa_key.private, rsa_key.kid
    return remember(jwt.api_jws.encode(payload, key, algorithm="RS256", headers={"kid": kid}))


def refusal(auth: JWTAuthenticator, token: str) -> AuthenticationError:
    """How `token` is refused; neither the error nor a line logged meanwhile quotes it."""
    seen = len(KEEPER.lines)
    with pytest.raises(AuthenticationError) as refused:
        asyncio.run(auth.authenticate(bearer(token)))
    written = [str(refused.value), *refused.value.args, *KEEPER.lines[seen:]]
    quotable = [text for text in {token, *token.split(".")} if len(text) >= 8]
    assert not [text for text in quotable if any(text in line for line in written)]
    return refused.value


def in_part(index: int, change: Callable[[str], str]) -> Callable[[str], str]:
    def mangle(token: str) -> str:
        parts = token.split(".")
        parts[index] = change(parts[index])
        return ".".join(parts)

    return mangle


def respelled(segment: str) -> str:
    """The segment with its last character carrying bits past the final byte: a lenient
    decoder drops them, reading the same bytes as the original."""
    assert len(segment) % 4 in (2, 3), "a segment of whole 3-byte groups has no spare bits"
    return segment[:-1] + BASE64URL[BASE64URL.index(segment[-1]) + 1]


MANGLED: dict[str, Callable[[str], str]] = {
    **{
        f"{what} in the {part}": in_part(i, lambda s, junk=junk: s[:5] + junk + s[5:])
        for i, part in enumerate(PARTS)
        for what, junk in (
            ("'!'", "!"),
            ("base64 '+'", "+"),
            ("base64 '/'", "/"),
            ("a space", " "),
            ("a tab", "\t"),
            ("a NUL", "\x00"),
            ("'é'", "é"),
            ("an Arabic digit", "\u0663"),
            ("a fullwidth letter", "\uff21"),
        )
    },
    **{
        f"'{pad}' after the {part}": in_part(i, lambda s, pad=pad: s + pad)
        for i, part in enumerate(PARTS)
        for pad in ("=", "==", "===")
    },
    "'é' after the token": lambda t: t + "é",
    "a character standing alone": in_part(2, lambda s: s + "A" * ((1 - len(s)) % 4)),
    "the signature respelled": in_part(2, respelled),
    "two segments": lambda t: t.rsplit(".", 1)[0],
    "two segments, no payload": lambda t: t.split(".")[0] + "." + t.split(".")[2],
    "one segment": lambda t: t.split(".")[0],
    "four segments": lambda t: t + "." + t.split(".")[2],
    "five segments": lambda t: t + "." + t.split(".")[1] + "." + t.split(".")[2],
    "an empty header": in_part(0, lambda s: ""),
    "an empty payload": in_part(1, lambda s: ""),
    "a leading dot": lambda t: "." + t,
    "a trailing dot": lambda t: t + ".",
    "a doubled dot": lambda t: t.replace(".", "..", 1),
    "only dots": lambda t: "..",
}


@pytest.mark.parametrize("kind", ["secret", "key set"])
@pytest.mark.parametrize("mangle", MANGLED.values(), ids=MANGLED.keys())
def test_junk_in_a_segment_is_malformed(
    mangle: Callable[[str], str], kind: str, pyjwt_segments: str, rsa_key: KeyPair
) -> None:
    auth, token = signed(kind, rsa_key)
    assert asyncio.run(auth.authenticate(bearer(token))).user_id == "alice"
    assert refusal(auth, mangle(token)).reason == "malformed_token"


@pytest.mark.parametrize("kind", ["secret", "key set"])
def test_an_empty_signature_is_a_bad_signature_not_a_malformed_token(
    kind: str, pyjwt_segments: str, rsa_key: KeyPair
) -> None:
    """`header.payload.` is the shape of an unsecured JWT (RFC 7519 section 6.1): refused
    for what its header says (`alg: none` is a `disallowed_algorithm`), not for its shape."""
    auth, token = signed(kind, rsa_key)
    assert refusal(auth, in_part(2, lambda s: "")(token)).reason == "invalid_signature"


@pytest.mark.parametrize("kind", ["secret", "key set"])
def test_a_huge_token_is_refused_by_its_size_before_it_is_read(kind: str, rsa_key: KeyPair) -> None:
    auth, token = signed(kind, rsa_key)
    assert refusal(auth, token + "!" * 1_000_000).reason == "token_too_large"
    assert refusal(auth, token * 100).reason == "token_too_large"


@pytest.mark.parametrize("lenient", [True, False], ids=["2.10.1", "now"])
@pytest.mark.parametrize("kind", ["secret", "key set"])
@settings(max_examples=60, deadline=None)
@given(
    junk=st.text(
        st.characters(exclude_characters=BASE64URL, exclude_categories=("Cs",)), min_size=1
    ),
    data=st.data(),
)
def test_any_junk_anywhere_is_malformed(
    junk: str, data: st.DataObject, kind: str, lenient: bool, rsa_key: KeyPair
) -> None:
    """Any characters outside the base64url alphabet (a dot too: it adds a segment), put
    anywhere inside a real token (not at its ends, where a header's blanks are trimmed)."""
    auth, token = signed(kind, rsa_key)
    at = data.draw(st.integers(1, len(token) - 1), label="at")
    with pytest.MonkeyPatch.context() as patch:
        if lenient:
            lenient_segments(patch)
        assert refusal(auth, token[:at] + junk + token[at:]).reason == "malformed_token"


NOT_OBJECTS = {
    "a list": b'["HS256"]',
    "a number": b"7",
    "a string": b'"RS256"',
    "null": b"null",
    "true": b"true",
    "not JSON": b"alg: HS256",
    "cut short": b'{"alg":',
    "not UTF-8": b"\xff\xfe{}",
}


@pytest.mark.parametrize("kind", ["secret", "key set"])
@pytest.mark.parametrize("content", NOT_OBJECTS.values(), ids=NOT_OBJECTS.keys())
def test_a_header_that_is_not_a_json_object_is_malformed(
    content: bytes, kind: str, rsa_key: KeyPair
) -> None:
    auth, token = signed(kind, rsa_key)
    mangled = in_part(0, lambda s: b64url(content))(token)
    assert refusal(auth, mangled).reason == "malformed_token"


@pytest.mark.parametrize("kind", ["secret", "key set"])
@pytest.mark.parametrize("content", NOT_OBJECTS.values(), ids=NOT_OBJECTS.keys())
def test_a_payload_that_is_not_a_json_object_is_malformed(
    content: bytes, kind: str, rsa_key: KeyPair
) -> None:
    """Signed or not: a payload swapped under the signature is not a bad signature first."""
    auth, token = signed(kind, rsa_key)
    assert refusal(auth, in_part(1, lambda s: b64url(content))(token)).reason == "malformed_token"
    assert refusal(auth, resigned(kind, rsa_key, content)).reason == "malformed_token"


NESTED = {
    "lists": lambda depth: b"[" * depth + b"]" * depth,
    "objects": lambda depth: b'{"a":' * depth + b"1" + b"}" * depth,
}


@pytest.mark.parametrize("kind", ["secret", "key set"])
@pytest.mark.parametrize("nest", NESTED.values(), ids=NESTED.keys())
@pytest.mark.parametrize("part", ["header", "payload", "signed payload"])
def test_a_deeply_nested_header_or_payload_is_malformed(
    part: str, nest: Callable[[int], bytes], kind: str, rsa_key: KeyPair
) -> None:
    """100,000 levels, in a token the size limit lets in: a clean refusal, no RecursionError."""
    auth, token = signed(kind, rsa_key, max_token_bytes=2_000_000)
    deep = nest(100_000)
    if part == "signed payload":
        mangled = resigned(kind, rsa_key, deep)
    else:
        mangled = in_part(PARTS.index(part), lambda s: b64url(deep))(token)
    assert refusal(auth, mangled).reason == "malformed_token"


@pytest.mark.parametrize("kind", ["secret", "key set"])
def test_a_header_nested_past_the_recursion_limit_fits_the_default_size(
    kind: str, rsa_key: KeyPair
) -> None:
    auth, token = signed(kind, rsa_key)
    mangled = in_part(0, lambda s: b64url(NESTED["lists"](2_000)))(token)
    assert len(mangled) <= auth.max_token_bytes
    assert refusal(auth, mangled).reason == "malformed_token"
