"""Redaction: configured paths, secret shapes, oversized and non-JSON values."""

from __future__ import annotations

import enum
import hashlib
import json
from typing import Any

import pytest
from audit_kit import BEARER, RAW_API_KEY
from hypothesis import given, settings
from hypothesis import strategies as st

from guard.audit.redact import SECRET_MARK, SECRET_PATTERN, Redactor, looks_secret, path_keys


def test_ordinary_args_are_returned_untouched_without_copy() -> None:
    args = {"city": "Paris", "days": 3, "metric": True, "nested": {"a": [1, 2, "x"]}}
    out, redacted = Redactor().redact(args)
    assert out is args and redacted == ()


def test_sensitive_names_at_any_depth_and_case() -> None:
    args = {
        "user": "bob",
        "Password": "hunter2",
        "cfg": {"API_KEY": "abc", "items": [{"token": "t"}]},
    }
    out, redacted = Redactor().redact(args)
    assert out == {
        "user": "bob",
        "Password": "<redacted:path>",
        "cfg": {"API_KEY": "<redacted:path>", "items": [{"token": "<redacted:path>"}]},
    }
    assert redacted == ("Password", "cfg.API_KEY", "cfg.items.0.token")
    assert args["Password"] == "hunter2"  # the caller's mapping is never modified


@pytest.mark.parametrize(
    "paths,args,expected",
    [
        (["headers.authorization"], {"headers": {"authorization": "x", "accept": "y"}},
         ("headers.authorization",)),
        (["*.sig"], {"a": {"sig": "1"}, "b": {"c": {"sig": "2"}}, "sig": "top"},
         ("a.sig", "b.c.sig")),
        (["ssn"], {"person": {"ssn": "123"}}, ("person.ssn",)),
        (["items.*.pin"], {"items": [{"pin": 1}, {"pin": 2}]}, ("items.0.pin", "items.1.pin")),
    ],
)  # fmt: skip
def test_configured_paths(
    paths: list[str], args: dict[str, Any], expected: tuple[str, ...]
) -> None:
    _, redacted = Redactor(paths).redact(args)
    assert redacted == expected


@pytest.mark.parametrize(
    "value",
    [
        BEARER,
        "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.abc_def-ghi",
        "-----BEGIN RSA PRIVATE KEY-----\nMIIEow...\n-----END RSA PRIVATE KEY-----",
        "-----BEGIN PRIVATE KEY-----\nMC4CAQ...",
        RAW_API_KEY,
        "sk-proj-abcdefghijklmnop1234",
        "ghp_" + "a1B2" * 9,
        "AKIAIOSFODNN7EXAMPLE",
        "xoxb-1234567890-abcdef",
        "AIza" + "b" * 35,
        "please use key sk-abcdefghijklmnopqrstu for this",  # embedded in text
    ],
)
def test_secret_shaped_values_are_redacted(value: str) -> None:
    assert looks_secret(value)
    out, redacted = Redactor().redact({"note": value})
    assert out == {"note": "<redacted:secret>"} and redacted == ("note",)


@pytest.mark.parametrize(
    "value",
    [
        "charge_sk-abcdefghijklmnopqrstu",  # `_` is a word character: no `\\b` before the key
        "stripe_sk_live_" + "a1B2" * 5,
        "token_ghp_" + "a1B2" * 9,
        "key_AKIAIOSFODNN7EXAMPLE_prod",
        "slack_xoxb-1234567890-abcdef",
        "gcp_AIza" + "b" * 35,
        "ci_glpat-" + "a1B2" * 5,
        "clésk-abcdefghijklmnopqrstu",
    ],
)
def test_a_key_glued_to_a_word_is_still_a_secret(value: str) -> None:
    """A credential right after `_` or a letter of another script (`charge_sk-...`, a
    variable name and its value pasted together) is still one."""
    assert looks_secret(value)
    assert Redactor().redact({"note": value})[1] == ("note",)


@pytest.mark.parametrize(
    "value", ["Paris", "a perfectly normal sentence here", "sk-short", "12345678901234567890"]
)
def test_ordinary_values_are_kept(value: str) -> None:
    assert not looks_secret(value)
    assert Redactor().redact({"v": value})[1] == ()


# Texts holding each shape (ASCII, where the marker shortcut applies), with their case
# flipped at random, and near misses: pieces of shapes among ordinary and non-ASCII text
# (the long s and the Kelvin sign match "s" and "k" case-insensitively).
_SHAPED = st.from_regex(SECRET_PATTERN, alphabet=st.characters(codec="ascii"))
_PIECES = st.sampled_from(
    [
        "Bearer ", "BASIC\t", "ba\u017fic ", "eyJ", "EYJ", "eyJhbGci.", ".eyJzdWIi.", "-----BEGIN ",
        "PRIVATE KEY-----", "sk-", "SK-", "sk_live_", "rk_test_", "ghp_", "github_pat_", "AKIA",
        "ASIA", "xoxb-", "AIza", "glpat-", "\u212a", "abcdefghij", "0123456789", " ", "é",
    ]
)  # fmt: skip
_TEXTS = st.one_of(
    _SHAPED,
    st.tuples(_SHAPED, st.randoms()).map(
        lambda t: "".join(c.swapcase() if t[1].random() < 0.5 else c for c in t[0])
    ),
    st.lists(st.one_of(_PIECES, st.text(max_size=6)), max_size=12).map("".join),
)


@settings(max_examples=800, deadline=None)
@given(_TEXTS)
def test_the_marker_shortcut_never_changes_what_looks_secret(text: str) -> None:
    expected = len(text) >= 14 and SECRET_PATTERN.search(text) is not None
    assert looks_secret(text) == expected
    assert (Redactor().redact({"v": text})[1] == ("v",)) == (expected and len(text) <= 4096)


def test_oversized_values_are_cut_with_their_digest() -> None:
    big = "x" * 10_000
    out, redacted = Redactor(max_value_chars=100).redact({"blob": big})
    assert redacted == ("blob",)
    assert (
        out["blob"]
        == f"<redacted:oversized chars=10000 sha256={hashlib.sha256(big.encode()).hexdigest()}>"
    )


class _Weird:
    def __repr__(self) -> str:
        raise RuntimeError("no repr for you")


def test_non_json_values_are_represented_never_crash() -> None:
    args = {
        "raw": b"\x00\x01",
        "when": {1, 2},
        "obj": _Weird(),
        "secret_bytes": RAW_API_KEY.encode(),
    }
    out, redacted = Redactor().redact(args)
    assert out["raw"].startswith("<non-json bytes:")
    assert out["obj"] == "<non-json _Weird: <_Weird>>"
    assert out["secret_bytes"] == "<redacted:secret>"  # a repr that shows a secret is redacted too
    assert set(redacted) == {"raw", "when", "obj", "secret_bytes"}
    json.dumps(out)  # what is recorded is JSON


# keys a client chooses: dots and backslashes among them
_KEYS = st.text(alphabet="a.\\b", min_size=1, max_size=5) | st.just("token")
_ARGS = st.recursive(
    st.sampled_from([1, "short", SECRET_MARK, "Bearer abcdefghijklmnopqrstuvwxyz"]),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_KEYS, inner, max_size=3),
    max_leaves=10,
)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(_KEYS, _ARGS, max_size=4))
def test_each_listed_path_names_exactly_the_value_redacted(args: dict[str, Any]) -> None:
    """A key may hold `.` (`{"a.b": ...}` next to `{"a": {"b": ...}}`): listed paths
    escape it, so each one leads to a marker, and no two lead to the same place."""
    clean, paths = Redactor().redact(args)
    assert len(set(paths)) == len(paths)
    for path in paths:
        node: Any = clean
        for key in path_keys(path):
            node = node[int(key)] if isinstance(node, list) else node[key]
        assert isinstance(node, str) and node.startswith("<redacted:"), (path, clean)


def test_dotted_keys_are_listed_escaped_and_still_match_patterns() -> None:
    args = {"a.b": {"pin": "1"}, "a": {"b": {"pin": "2"}}, "c\\d": {"token": "x"}}
    clean, paths = Redactor(paths=["a.b.pin"]).redact(args)
    assert paths == ("a\\.b.pin", "a.b.pin", "c\\\\d.token")
    assert [path_keys(p) for p in paths] == [["a.b", "pin"], ["a", "b", "pin"], ["c\\d", "token"]]
    assert clean["a.b"]["pin"] == clean["a"]["b"]["pin"] == "<redacted:path>"


def test_non_string_keys_become_strings() -> None:
    out, _ = Redactor().redact({1: "a", "b": "c"})
    assert out == {"1": "a", "b": "c"}


def test_bad_configuration_is_rejected() -> None:
    with pytest.raises(ValueError, match="max_value_chars"):
        Redactor(max_value_chars=3)


class _Level(enum.IntEnum):
    HIGH = 3


class _Mode(enum.StrEnum):
    FAST = "fast"


class _Legacy(str, enum.Enum):  # noqa: UP042 - str() of it is "_Legacy.SLOW", not "slow"
    SLOW = "slow"


@pytest.mark.parametrize(
    ("value", "plain"), [(_Level.HIGH, 3), (_Mode.FAST, "fast"), (_Legacy.SLOW, "slow")]
)
def test_enum_values_are_recorded_as_their_value(value: Any, plain: Any) -> None:
    out, redacted = Redactor().redact({"level": value, "note": "x" * 20})
    assert out == {"level": plain, "note": "x" * 20} and redacted == ()
    assert type(out["level"]) is type(plain)  # JSON encodes the plain value, not the enum


def test_nothing_derived_from_a_redacted_value_is_recorded(tmp_path: Any) -> None:
    """A digest of the original arguments would let anyone with the store test password
    guesses against it: `args_sha256` is the digest of the arguments as recorded."""
    from audit_kit import event

    from guard.audit import AuditLog, open_store

    log = AuditLog(tmp_path / "s")
    log.append(event(args={"user": "bob", "password": "hunter2"}))
    log.close()
    with open_store(tmp_path / "s") as con:
        args, digest = con.execute("SELECT args, args_sha256 FROM decisions").fetchone()
    assert "hunter2" not in args
    assert digest == hashlib.sha256(args.encode()).hexdigest()
    for guess in ("123456", "hunter2", "letmein"):
        candidate = json.dumps({**json.loads(args), "password": guess}, sort_keys=True,
                               separators=(",", ":"), ensure_ascii=False)  # fmt: skip
        assert hashlib.sha256(candidate.encode()).hexdigest() != digest


def test_a_uri_loses_what_its_arguments_lose() -> None:
    r = Redactor(paths=["pin"])
    original = {"pin": "12 34/56", "city": "Paris"}
    clean, redacted = r.redact(original)
    assert r.uri("acct://12%2034%2F56/x?city=Paris", original, clean, redacted) == (
        "acct://<redacted:path>/x?city=Paris"  # the percent-encoded form too
    )
    assert r.uri("acct://12 34/56/x", original, clean, redacted) == "acct://<redacted:path>/x"
    assert r.uri("plain://Paris", original, clean, ()) == "plain://Paris"
    assert r.uri(f"x://y?k={RAW_API_KEY}", None, None, ()) == "<redacted:secret>"


@pytest.mark.parametrize(
    "text",
    ["explain basic arithmetic to me", "the bearer instrument is void", "a basic sentence"],
)
def test_english_with_basic_or_bearer_is_not_a_credential(text: str) -> None:
    """Found in review: any word of 8 letters after "basic" or "bearer" was redacted,
    losing the argument for audit and replay."""
    assert Redactor().redact({"q": text}) == ({"q": text}, ())


@pytest.mark.parametrize(
    "text",
    [
        "Authorization: Basic dXNlcjpwYXNz",  # user:pass
        "basic YWRtaW46czNjcjN0IQ==",
        "Bearer 8f14e45fceea167a5a36dedd4bea2543",  # an opaque token
        "bearer abc.def.ghi-0123456789",
    ],
)
def test_authorization_values_are_credentials(text: str) -> None:
    assert Redactor().redact({"q": text}) == ({"q": "<redacted:secret>"}, ("q",))


def test_secret_search_stays_linear_on_hostile_text() -> None:
    """Found in review: from every "eyJ" of "eyJeyJ..." the JWT shape scanned to the end
    of the text; 180 KB of it took 6 s on the event loop (an argument, a URI). A bound
    far above linear time and far below quadratic (minutes at this size)."""
    import time

    text = "eyJ" * 200_000  # 600 KB, under the MCP SDK's 4 MiB body limit
    t0 = time.perf_counter()
    assert not looks_secret(text)
    assert Redactor(max_value_chars=10**7).redact({"t": text})[1] == ()
    assert time.perf_counter() - t0 < 10
    # a token is still found after a separator, in quotes, after `Bearer ` or `token=`
    jwt = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.abc_def-ghi"
    for around in ("{}", " {} ", '"{}"', "Bearer {}", "token={}", "x.{}"):
        assert looks_secret(around.format(jwt)), around


def test_oversized_values_are_not_searched() -> None:
    # what is not recorded needs no search: megabytes would take seconds
    big = "eyJ" * 2_000_000
    out, redacted = Redactor().redact({"blob": big})
    assert redacted == ("blob",) and out["blob"].startswith("<redacted:oversized chars=6000000 ")


@pytest.mark.parametrize(
    ("uri", "shown"),
    [
        ("https://admin:hunter2pass@db.example.com/x", "https://admin:<redacted:path>@db.example.com/x"),
        (
            "https://example.com/x?token=plainsecretvalue99&api_key=anotherone77&page=2",
            "https://example.com/x?token=<redacted:path>&api_key=<redacted:path>&page=2",
        ),
        ("https://app.example/cb#access_token=abc123xyz&state=1", "https://app.example/cb#access_token=<redacted:path>&state=1"),
        ("https://example.com/x?Password=p%40ss", "https://example.com/x?Password=<redacted:path>"),
        ("https://user@example.com/x?page=2&q=a=b", "https://user@example.com/x?page=2&q=a=b"),
        ("http://[::1/bad?token=x#a", "http://[::1/bad?token=<redacted:path>#a"),  # no URL
    ],
)  # fmt: skip
def test_a_uri_loses_passwords_and_sensitive_parameters(uri: str, shown: str) -> None:
    """Found in review: `user:pass@` and `?token=` URIs the server does not have were
    recorded as sent."""
    assert Redactor().uri(uri, None, None, ()) == shown


def test_an_oversized_uri_is_replaced_by_its_length_and_digest() -> None:
    uri = "vault://" + "a" * 5000
    assert Redactor().uri(uri, None, None, ()).startswith("<redacted:oversized chars=5008 ")


def test_a_lone_string_is_cut_when_long_and_marked_when_secret_shaped() -> None:
    """`Redactor.text`: a value with no path (a request id); path rules never apply."""
    r = Redactor(paths=["*"])
    assert r.text("req-1") == "req-1"
    assert r.text("x" * 20) == "x" * 20
    assert r.text("sk-" + "a1B2" * 12) == SECRET_MARK
    assert r.text("y" * 257, max_chars=256).startswith("<redacted:oversized chars=257 sha256=")
    assert r.text("y" * 256, max_chars=256) == "y" * 256
    assert Redactor(max_value_chars=100).text("z" * 101).startswith("<redacted:oversized")
    assert Redactor(detect_secrets=False).text("sk-" + "a1B2" * 12).startswith("sk-")
    assert r.text("req-\ud800") == "<redacted:not-utf8 req-\\ud800>"  # never stored as `?`
