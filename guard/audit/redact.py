"""Redaction: what of a request's arguments may be written down.

Runs on the request path (inside `AuditLog.append`), so the common case (a few short
strings and numbers under names that are not sensitive) touches each value once and
allocates nothing: the original mapping is returned as is when nothing needed redacting.

Redacted values are replaced by a marker string and their dotted path is listed, so
replay treats them as unknown, never as empty.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import re
import traceback
from collections.abc import Iterable, Mapping
from fnmatch import translate
from typing import Any, Final
from urllib.parse import quote, unquote, unquote_plus

from guard._limits import HUGE_INT, LEAST_INT, MAX_DEPTH
from guard._settings import flag, whole
from guard._settings import names as names_of

__all__ = [
    "DEFAULT_SENSITIVE_NAMES",
    "SECRET_PATTERN",
    "Redactor",
    "looks_secret",
    "path_keys",
    "scrub",
    "scrub_uris",
    "traceback_text",
]

# argument names whose value is never recorded, at any depth (compared lower-cased), also
# as the last words of a longer name (`db_password`, `accessToken`, `X-Auth-Token`)
DEFAULT_SENSITIVE_NAMES: Final = frozenset(
    {
        "password", "passwd", "pwd", "secret", "client_secret", "token", "access_token",
        "refresh_token", "id_token", "api_key", "apikey", "x-api-key", "authorization",
        "cookie", "set-cookie", "private_key", "credentials", "session_token", "secret_key",
        "secret_access_key", "passphrase",
    }
)  # fmt: skip

# Shapes of credentials seen in the wild. A value containing one is redacted whole.
SECRET_PATTERN: Final = re.compile(
    # HTTP authorization values: a bearer token is long; basic credentials are base64 with
    # some capital, digit or symbol ("basic arithmetic" is English, not credentials)
    r"\b(?i:bearer)\s+[A-Za-z0-9\-._~+/]{20,}=*"
    r"|\b(?i:basic)\s+[a-z]*[A-Z0-9+/][A-Za-z0-9+/]{6,}=*"
    # JWT; only from the start of a token (or after a percent escape, as in a URL): from
    # every "eyJ" of "eyJeyJeyJ..." the search would scan to the end (quadratic: 180 KB
    # of it took 6 s)
    r"|(?:(?<![A-Za-z0-9_-])|(?<=%[0-9A-Fa-f]{2}))"
    r"eyJ[A-Za-z0-9_-]{5,}\.eyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]*"
    r"|-----BEGIN [A-Z ]*PRIVATE KEY-----"  # PEM private keys
    # Vendor keys, after anything but an ASCII letter or digit: `\b` would miss one glued
    # to a name by `_` (`charge_sk-...`) or to a letter of another script.
    r"|(?<![A-Za-z0-9])(?:"
    r"sk-[A-Za-z0-9_-]{16,}"  # OpenAI / Anthropic style
    r"|(?:sk|rk|pk)_(?:live|test)_[A-Za-z0-9]{16,}"  # Stripe
    r"|gh[pousr]_[A-Za-z0-9]{30,}|github_pat_[A-Za-z0-9_]{30,}"  # GitHub
    r"|(?:AKIA|ASIA)[0-9A-Z]{16}(?![A-Za-z0-9])"  # AWS access key id
    r"|xox[abprs]-[A-Za-z0-9-]{10,}"  # Slack
    r"|AIza[0-9A-Za-z_-]{35}"  # Google API key
    r"|glpat-[A-Za-z0-9_-]{20,})"  # GitLab
)
# the shortest thing SECRET_PATTERN can match; shorter strings skip the regex
_MIN_SECRET_LEN: Final = 14
# Every shape above contains one of these, lower-cased; an ASCII text holding none cannot
# match. The regex tries each shape at each position (~3 µs for a 36-character session
# id); these substring tests cost ~0.4 µs.
_MARKERS: Final = (
    "bearer", "basic", "eyj", "-----begin", "sk-", "_live_", "_test_", "gh", "github_pat_",
    "akia", "asia", "xox", "aiza", "glpat-",
)  # fmt: skip
# ... and where a match starts, relative to its marker: at it, or for Stripe's
# `sk_live_...`, two characters before `_live_`
_MARKER_STARTS: Final = tuple((m, 2 if m in ("_live_", "_test_") else 0) for m in _MARKERS)

_SCALARS: Final = frozenset({int, float, bool, type(None)})
# an integer beyond these (over 3,600 digits) is cut: its record could not be written
_HUGE_INT: Final = HUGE_INT
_LEAST_INT: Final = LEAST_INT

SECRET_MARK: Final = "<redacted:secret>"  # noqa: S105 - the marker, not a secret
_MARKS: Final = re.compile(r"(<redacted:[^>]*>)")  # markers already in a text
# a URI's password: `scheme://user:PASSWORD@host`, up to the authority's end
_PASSWORD: Final = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*:)?(//[^/?#@:]*):([^/?#]*)@")
_SEPARATORS: Final = re.compile(r"([&;])")
# a name's words: split at camel case and at anything not a letter or digit
_CAMEL: Final = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")
_NOT_WORD: Final = re.compile(r"[\W_]+")
_MAX_VERDICTS: Final = 4096  # names whose verdict a redactor remembers (callers invent names)
_MAX_REMEMBERED_NAME: Final = 64  # longer names are judged each time, never kept
PATH_MARK: Final = "<redacted:path>"
# a URI quoted in a text (a denial's or an exception's message: `'vault://db?token=x'`)
QUOTED_URI: Final = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^\s'\"`<>]+")
# what stands for a mapping or list nested deeper than `MAX_DEPTH` levels: a walk down to
# where a hostile caller's nesting ends would exhaust Python's recursion limit (an MCP
# server's JSON parser accepts ~990 levels), and the record would be lost with the error
DEEP_MARK: Final = "<redacted:too-deep>"
# Characters of paths one redaction may build. A path spells out every key above it, so a
# caller's long keys, repeated in the path of each value below them, turned a 100 KB
# request into 117 MB of listed paths (gigabytes from a 1 MB one). Past the bound, every
# argument is recorded as `TOO_BIG_MARK`: work and record stay within the bound and the
# input's own size.
MAX_PATH_CHARS: Final = 4 * 1024 * 1024
TOO_BIG_MARK: Final = "<redacted:too-big>"
_URI_FIELDS: Final = ("resource_uri",)
_URI_NAME_FIELDS: Final = ("resource", "resource_uri")
_NAME_FIELDS: Final = ("resource",)


# What an item of a mapping or list weighs in `Redactor.measured`, in characters: a short
# key and value, and the objects holding them.
ITEM_CHARS: Final = 64


class _Paths(list[str]):
    """The paths a redaction lists, and how many more characters of paths it may build
    (the class's `room` until the first path is built: no `__init__` to run for the many
    redactions that build none); `size`: what the redacted value weighs besides its paths
    (`Redactor.measured`)."""

    room: int = MAX_PATH_CHARS
    size: int = 0
    held: bool = False  # every mapping and list copied, changed or not (`measured`)


class _TooManyPaths(Exception):
    """A redaction built more than `MAX_PATH_CHARS` of paths."""


def _words(name: str) -> str:
    """`name`'s words, lower-cased and joined by `_`: `accessToken` and `X-Access-Token`
    are `access_token` and `x_access_token`."""
    return _NOT_WORD.sub("_", _CAMEL.sub("_", name).lower()).strip("_")


def _escaped(key: str) -> str:
    """A key as a listed path names it: `.` and `\\` escaped with `\\`."""
    return key.replace("\\", "\\\\").replace(".", "\\.")


def path_keys(path: str) -> list[str]:
    """The keys (list indexes as text) a listed redacted path names, outermost first: a
    key holding `.` or `\\` is listed with them escaped by `\\`, so `a\\.b.c` is key
    `a.b`, then `c`.

    ```python
    assert path_keys("headers.authorization") == ["headers", "authorization"]
    assert path_keys("items.0.token") == ["items", "0", "token"]
    assert path_keys("a\\.b.c") == ["a.b", "c"]
    ```
    """
    if "\\" not in path:
        return path.split(".")
    keys, key, escape = [], [], False
    for char in path:
        if escape:
            key.append(char)
            escape = False
        elif char == "\\":
            escape = True
        elif char == ".":
            keys.append("".join(key))
            key = []
        else:
            key.append(char)
    keys.append("".join(key))
    return keys


def looks_secret(text: str) -> bool:
    """Whether `text` contains something shaped like a credential.

    ```python
    assert looks_secret("Authorization: Bearer abc.def.ghi-0123456789")
    assert looks_secret("Basic dXNlcjpwYXNz")  # user:pass
    assert not looks_secret("explain basic arithmetic, then Paris")
    ```
    """
    return len(text) >= _MIN_SECRET_LEN and _search(text)


def scrub(text: str) -> str:
    """`text` with each part shaped like a credential (`SECRET_PATTERN`) replaced by the
    secret marker, the rest kept: for a log line quoting what someone wrote, such as a
    policy value in a load error.

    ```python
    error = "invalid regex 'sk-live-0123456789abcdef((': missing )"
    assert scrub(error) == "invalid regex '<redacted:secret>((': missing )"
    ```
    """
    return SECRET_PATTERN.sub(SECRET_MARK, text) if looks_secret(text) else text


def scrub_uris(text: str, redactor: Redactor | None = None) -> str:
    """`text` with each URI it quotes cleaned by `redactor.uri` (default: a `Redactor()`):
    without a password or the values of sensitive query and fragment parameters. For a
    message quoting a URI as someone sent it (a denial, an exception).

    ```python
    assert scrub_uris("no 'db://u:pw@h/x'") == "no 'db://u:<redacted:path>@h/x'"
    ```
    """
    if "://" not in text:
        return text
    uri = (redactor or _default_redactor()).uri
    return QUOTED_URI.sub(lambda m: uri(m[0], None, None, ()), text)


@functools.cache
def _default_redactor() -> Redactor:
    return Redactor()


def traceback_text(exc: BaseException) -> str:
    """`exc`'s traceback as logging shows it, with each part shaped like a credential
    masked (`scrub`) and each URI it quotes cleaned (`scrub_uris`): an exception's message
    may quote what it was handling.

    ```python
    try:
        raise ValueError("rejected sk-live-0123456789abcdef")
    except ValueError as exc:
        assert traceback_text(exc).endswith("ValueError: rejected <redacted:secret>")
    ```
    """
    return scrub_uris(scrub("".join(traceback.format_exception(exc)).rstrip()))


def _search(text: str) -> bool:
    """Whether `SECRET_PATTERN.search(text)` finds something.

    Tried only where a shape's marker is: a match of any shape starts at its marker
    (`_MARKER_STARTS`; lookbehinds and `\b` still see the characters before), so the
    pattern tried there finds what a search finds. A search tries every shape at every
    position, ~80 ns a character: 330 us for a 4 KB argument of prose, where most prose
    holds a marker ("gh" of "right"); finding the markers costs ~1 us. The markers are
    found in `text` lower-cased, which the pattern's one case-insensitive part, `bearer`
    and `basic`, matches beyond ASCII only for U+0131 (dotless i) and U+017F (long s),
    mapped here, and U+0130 (dotted capital I), whose lower case is two characters: a
    text holding one (positions would shift) is searched whole."""
    low = text.lower()
    if not text.isascii():
        if len(low) != len(text):
            return SECRET_PATTERN.search(text) is not None
        low = low.replace("\u0131", "i").replace("\u017f", "s")
    match = SECRET_PATTERN.match
    for marker, back in _MARKER_STARTS:
        if marker not in low:
            continue
        at = low.find(marker)
        while at >= 0:
            if at >= back and match(text, at - back) is not None:
                return True
            at = low.find(marker, at + 1)
    return False


def _replace_unmarked(text: str, old: str, new: str) -> str:
    """`text.replace(old, new)` outside the markers already in it, so that redacting a
    URI twice changes nothing more (`e` must not become `<r<redacted:path>dacted...`)."""
    parts = _MARKS.split(text)  # markers at odd places
    for i in range(0, len(parts), 2):
        parts[i] = parts[i].replace(old, new)
    return "".join(parts)


def _encodable(text: str) -> bool:
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True


def _unencodable(text: str) -> str:
    """The marker of text that is not UTF-8 (lone surrogates), with them escaped."""
    shown = text[:200].encode(errors="backslashreplace").decode()
    return f"<redacted:not-utf8 {shown}>"


def _oversized(text: str) -> str:
    """The marker of a value too long to record: its length and SHA-256 (of a value that
    long, a digest reveals nothing guessable)."""
    digest = hashlib.sha256(text.encode(errors="surrogatepass")).hexdigest()
    return f"<redacted:oversized chars={len(text)} sha256={digest}>"


def _key_mark(n: int, value: Mapping[Any, Any], changed: Mapping[Any, Any] | None) -> str:
    """The marker of a mapping's `n`th key shaped like a credential, or the next one
    that is no key of `value` or `changed`: two such keys stay two keys, and a caller's
    own key spelled like a marker is kept."""
    while True:
        mark = f"<redacted:key {n}>"
        if mark not in value and (changed is None or mark not in changed):
            return mark
        n += 1


def _safe_repr(value: Any) -> str:
    try:
        return repr(value)
    except Exception:  # a broken __repr__ must not break recording
        return f"<{type(value).__name__}>"


class Redactor:
    """Removes secrets from argument mappings before they are recorded.

    Args:
        paths: extra sensitive argument paths. A name without a dot (`password`) matches
            that key at any depth; a dotted pattern (`headers.authorization`, `*.token`,
            `items.*.secret`) matches the full dotted path, `*` matching any text. List
            items are addressed by index (`items.0.token`).
        names: sensitive key names matched at any depth (default `DEFAULT_SENSITIVE_NAMES`),
            also as the last words of a longer name: `password` matches `db_password` and
            `newPassword`, `token` matches `X-Auth-Token` (not `max_tokens`, `token_count`).
        max_value_chars: strings longer than this are replaced by a marker carrying their
            length and SHA-256.
        detect_secrets: also redact values shaped like credentials (`SECRET_PATTERN`).

    ```python
    r = Redactor(paths=["headers.x-token"])
    args, redacted = r.redact({"city": "Paris", "password": "hunter2"})
    # args == {"city": "Paris", "password": "<redacted:path>"}; redacted == ("password",)
    ```
    """

    __slots__ = (
        "_detect", "_longest", "_max", "_names", "_pattern", "_plain_items", "_verdicts",
        "_words",
    )  # fmt: skip

    def __init__(
        self,
        paths: Iterable[str] = (),
        *,
        names: Iterable[str] = DEFAULT_SENSITIVE_NAMES,
        max_value_chars: int = 4096,
        detect_secrets: bool = True,
    ) -> None:
        max_value_chars = whole("max_value_chars", max_value_chars, minimum=16)
        # one string is its letters: "ssn" would redact keys "s" and "n", not "ssn"
        paths = names_of("paths", paths)
        names = names_of("names", names)
        self._names = frozenset(n.lower() for n in names) | frozenset(
            p.lower() for p in paths if "." not in p
        )
        self._words = frozenset(filter(None, map(_words, self._names)))
        self._longest = max(map(len, self._words), default=0)
        # name -> whether it is sensitive; the few names of a server's tools repeat
        self._verdicts: dict[str, bool] = {}
        dotted = [translate(p.lower()) for p in paths if "." in p]
        self._pattern = re.compile("|".join(dotted)) if dotted else None
        # whether no list index (`0`, `1`, ...) can be sensitive: then short items of a
        # list take the fast path short values of a mapping take
        self._plain_items = self._pattern is None and not any(
            name.isdigit() for name in self._names | self._words
        )
        self._max = max_value_chars
        # `detect_secrets=""` would let credential-shaped values into the records
        self._detect = flag("detect_secrets", detect_secrets)

    def sensitive(self, name: str) -> bool:
        """Whether the value under key `name` is never recorded: `name` is a sensitive name,
        or ends with the words of one (`db_password`, `clientSecret`, `X-Auth-Token`), is
        not UTF-8 (a lone surrogate), or (with `detect_secrets`) is shaped like a
        credential itself.

        ```python
        assert Redactor().sensitive("accessToken") and not Redactor().sensitive("max_tokens")
        ```
        """
        verdict = self._verdicts.get(name)
        if verdict is None:
            verdict = name.lower() in self._names
            if not verdict and self._words:
                words, names = _words(name), self._words
                # only a tail as long as a name can be one: copying every tail of a
                # caller's `a_a_a_...` key was quadratic (200 KB of it took 2 s)
                tail = words[-self._longest - 1 :]
                verdict = words in names or any(
                    tail[i + 1 :] in names for i, c in enumerate(tail) if c == "_"
                )
            if not verdict and self._detect and len(name) >= _MIN_SECRET_LEN:
                # a name shaped like a credential is one: no value under it is recorded
                # (and `redact` records a marker in its place)
                verdict = _search(name)
            if not verdict and not name.isascii():
                # a name that is not UTF-8 (a lone surrogate) cannot be recorded either:
                # stored, it would become `?` (and `redact` records a marker in its place)
                verdict = not _encodable(name)
            if len(name) <= _MAX_REMEMBERED_NAME:
                if len(self._verdicts) >= _MAX_VERDICTS:
                    self._verdicts.clear()  # callers inventing names: start over, bounded
                self._verdicts[name] = verdict
        return verdict

    def redact(
        self, args: Mapping[str, Any] | None
    ) -> tuple[Mapping[str, Any] | None, tuple[str, ...]]:
        """Return `(recordable_args, redacted_paths)`; when nothing was redacted,
        `recordable_args` is `args` itself (keys made strings, if any were not).

        Nothing derived from a redacted value is kept: no digest of the original arguments,
        which would let anyone holding the store test guesses of a short secret (a
        password) against it. (An oversized value keeps its length and SHA-256: it was cut
        for its size, not for being secret.)
        """
        clean, redacted, _ = self.measured(args)
        return clean, redacted

    def measured(
        self, args: Mapping[str, Any] | None, *, held: bool = False
    ) -> tuple[Mapping[str, Any] | None, tuple[str, ...], int]:
        """`redact(args)`, and roughly how many characters the recordable arguments hold:
        their strings and the paths built, each item of a mapping or list as `ITEM_CHARS`,
        counted on the walk redaction makes anyway. What a queued record holds in memory
        is in proportion to it (the audit queue's bound counts it). `held`: the recordable
        arguments are copies all the way down, even where nothing was redacted (a queued
        record must not change with the caller's objects), made on the same walk."""
        if not args:
            return args, (), 0
        out = _Paths()
        if held:
            out.held = True
        try:
            clean = self._map(args, "", out)
        except _TooManyPaths:
            clean, redacted = self.too_big(args)
            return clean, redacted, ITEM_CHARS * len(clean)
        return clean, tuple(out), out.size + MAX_PATH_CHARS - out.room

    def too_big(self, args: Mapping[Any, Any]) -> tuple[dict[str, str], tuple[str, ...]]:
        """`args` as recorded when they are too big to record: each argument
        `TOO_BIG_MARK` (its key as `recorded_keys` gives it), and the paths of them all."""
        keys = self.recorded_keys(args, args)
        return dict.fromkeys(keys, TOO_BIG_MARK), tuple(map(_escaped, keys))

    def uri(
        self,
        uri: str,
        args: Mapping[str, Any] | None,
        clean: Mapping[str, Any] | None,
        redacted: Iterable[str],
    ) -> str:
        """`uri` without what redaction took out of `args` (`redact` made `clean` and
        `redacted` of them): a read through a template carries its parameters in the URI
        too. Each redacted parameter's value, as sent or percent-encoded, becomes its
        marker; so do a password in the URI's user part and the value of a query or
        fragment parameter with a sensitive name (`?token=...`, `#access_token=...`). A
        URI that still looks like it holds a credential is replaced whole, one longer than
        `max_value_chars` by its length and digest."""
        if len(uri) > self._max:
            return _oversized(uri)
        for path in redacted:
            value = args.get(path) if args and "." not in path else None
            if isinstance(value, str) and value:
                mark = str(clean.get(path, PATH_MARK)) if clean else PATH_MARK
                # as sent, encoded whole, or as FastMCP encodes a `{name*}` (its `/` kept)
                for form in {value, quote(value, safe=""), quote(value, safe="/")}:
                    uri = _replace_unmarked(uri, form, mark)
        if "@" in uri or "=" in uri:
            uri = self._uri_credentials(uri)
        if "%" in uri:
            # a credential percent-encoded (`admin%3Apass%40host`: a template parameter
            # holding `user:pass@host` as a mount forwards it) is shown decoded, without it
            decoded = unquote(uri)
            if "@" in decoded or "=" in decoded:
                cleaned = self._uri_credentials(decoded)
                if cleaned != decoded:
                    uri = cleaned
        return SECRET_MARK if self._detect and looks_secret(uri) else uri

    def _uri_credentials(self, uri: str) -> str:
        """The URI with a password and sensitive parameters' values as markers, changed
        in place (the rest as sent: rebuilding it would drop an empty `//` or `?`)."""
        uri = _PASSWORD.sub(lambda m: f"{m[1] or ''}{m[2]}:{PATH_MARK}@", uri, count=1)
        rest, hash_, fragment = uri.partition("#")
        rest, mark, query = rest.partition("?")
        return rest + mark + self._parameters(query) + hash_ + self._parameters(fragment)

    def _parameters(self, text: str) -> str:
        """`a=1&token=x;b=2` with the values of sensitive names replaced by the marker."""
        if "=" not in text:
            return text
        parts = _SEPARATORS.split(text)  # pairs at even places, separators between
        for i in range(0, len(parts), 2):
            name, eq, _ = parts[i].partition("=")
            if eq and self.sensitive(unquote_plus(name)):
                parts[i] = f"{name}={PATH_MARK}"
        return "".join(parts)

    def resource(
        self,
        resource: Any,
        args: Mapping[str, Any] | None,
        clean: Mapping[str, Any] | None = None,
        redacted: Iterable[str] | None = None,
    ) -> Any:
        """`resource` as it may be shown (recorded, traced): its URI through `uri` (and its
        name too when the name is the URI), for a resource read through a template or not
        known to the server; others are the server's own. `clean` and `redacted` are
        `redact(args)`, computed here if not given."""
        if resource.uri is None:
            return resource
        if redacted is None:
            clean, redacted = self.redact(args)
        if resource.found and resource.template is None and not redacted:
            return resource  # the server's own URI
        uri = self.uri(resource.uri, args, clean, redacted)
        if uri == resource.uri:
            return resource
        name = uri if resource.name == resource.uri else resource.name
        return dataclasses.replace(resource, uri=uri, name=name)

    @staticmethod
    def fields(resource: Any, shown: Any) -> tuple[str, ...]:
        """The columns (`inputs_redacted`) that `shown`, what `resource` or `text` made
        of `resource`, no longer shows as sent: `resource_uri`, and `resource` (the name)."""
        if shown is resource:
            return ()
        if shown.uri == resource.uri:
            return _NAME_FIELDS
        return _URI_FIELDS if shown.name == resource.name else _URI_NAME_FIELDS

    def text(self, value: str, max_chars: int | None = None) -> str:
        """A single string the client chose outside the arguments (a JSON-RPC request id)
        as it may be recorded: over `max_chars` (default: the redactor's limit) it becomes
        the oversized marker, shaped like a credential the secret marker, not UTF-8 the
        escaped marker (as an argument would be). Path rules do not apply: it has no path.

        ```python
        assert Redactor().text("req-7") == "req-7"
        assert Redactor().text("x" * 300, max_chars=256).startswith("<redacted:oversized")
        ```
        """
        return self._string(value, self._max if max_chars is None else max_chars)

    def _string(self, text: str, limit: int) -> str:
        """`text` as it may be recorded: itself, or a marker in its place."""
        if len(text) > limit:  # not recorded: not searched (megabytes take seconds)
            return _oversized(text)
        if len(text) < _MIN_SECRET_LEN:
            return text if text.isascii() or _encodable(text) else _unencodable(text)
        if self._detect and _search(text):
            return SECRET_MARK
        if not text.isascii() and not _encodable(text):
            # a lone surrogate (valid JSON `"\\ud800"`) cannot be stored as sent: it would
            # become `?`, a value the decision never saw; replay: unknown. (Searched
            # first: its marker shows the text.)
            return _unencodable(text)
        return text

    def _map(
        self,
        value: Mapping[Any, Any],
        prefix: str,
        out: _Paths,
        listed: str | None = None,
        depth: int = 1,
    ) -> Mapping[str, Any]:
        """`value` redacted; `prefix` is its path as patterns see it (keys joined by `.`),
        `listed` as `out` lists it (keys escaped), when the two differ; `depth`: how many
        mappings and lists hold it."""
        changed: dict[Any, Any] | None = None
        marks = 0  # keys shaped like credentials met
        verdicts, plain = self._verdicts, self._pattern is None
        out.size += ITEM_CHARS * len(value)
        for key, item in value.items():
            # fast path: a short scalar under an ordinary name needs no path and no copy
            ordinary = False
            if plain and type(key) is str:
                known = verdicts.get(key)
                if known is None:  # (a name longer than any remembered one: weighed)
                    out.size += len(key)
                    known = self.sensitive(key)
                ordinary = not known
            if ordinary:
                cls = type(item)
                if (cls is str and len(item) < _MIN_SECRET_LEN and item.isascii()) or (
                    cls in _SCALARS and (cls is not int or _LEAST_INT < item < _HUGE_INT)
                ):
                    continue
            skey = key if isinstance(key, str) else str(key)
            secret = self._secret_key(skey)
            if secret:
                # neither a key shaped like a credential nor its value is recorded: a
                # marker apart from the mapping's other keys stands for them, listed
                marks += 1
                skey = _key_mark(marks, value, changed)
            path = prefix + skey
            shown = None
            if listed is not None or "." in skey or "\\" in skey:
                shown = (prefix if listed is None else listed) + _escaped(skey)
            if secret:
                self._spend(out, path, shown)
                out.append(path if shown is None else shown)
                new = SECRET_MARK
            else:
                new = self._check(skey, path, item, out, shown, depth)
            if new is not item or skey is not key:
                if changed is None:
                    changed = dict(value)
                if skey is not key:  # not text, or a credential: the key as sent goes
                    del changed[key]
                changed[skey] = new
        if changed is None:
            return dict(value) if out.held else value
        return changed

    def recorded_keys(self, keys: Iterable[Any], taken: Mapping[Any, Any]) -> list[str]:
        """`keys` as they may be recorded: as text, each shaped like a credential as a
        marker (`<redacted:key 1>`) that is no other of them and no key of `taken`.

        ```python
        assert Redactor().recorded_keys(["a", "sk-live-0123456789abcdef"], {}) == [
            "a", "<redacted:key 1>"]
        ```
        """
        recorded: dict[str, None] = {}
        marks = 0
        for key in keys:
            skey = key if isinstance(key, str) else str(key)
            if self._secret_key(skey):
                marks += 1
                skey = _key_mark(marks, taken, recorded)
            recorded[skey] = None
        return list(recorded)

    def _secret_key(self, key: str) -> bool:
        """Whether `key` itself cannot be recorded: it is shaped like a credential, or is
        not UTF-8 (`sensitive` says so first, and remembers it: an ordinary key costs
        nothing more)."""
        if not key.isascii() and not _encodable(key):
            return True  # stored, it would be `?`: a key the decision never saw
        return len(key) >= _MIN_SECRET_LEN and self._detect and self.sensitive(key) and _search(key)

    @staticmethod
    def _spend(out: _Paths, path: str, shown: str | None) -> None:
        """Count a path built (and its listed form) against the redaction's bound."""
        out.room -= len(path) if shown is None else len(path) + len(shown)
        if out.room < 0:
            raise _TooManyPaths

    def _check(
        self, key: str, path: str, item: Any, out: _Paths, shown: str | None, depth: int
    ) -> Any:
        """`item` under `key`, `depth` levels down, redacted; `path` as patterns see it,
        `shown` as listed (if it differs: a key on the way holds `.` or `\\`)."""
        # (`_spend`, inlined: a call costs every nested argument ~0.05 us)
        out.room -= len(path) if shown is None else len(path) + len(shown)
        if out.room < 0:
            raise _TooManyPaths
        if self.sensitive(key) or (
            self._pattern is not None and self._pattern.fullmatch(path.lower())
        ):
            out.append(path if shown is None else shown)
            return PATH_MARK
        cls = type(item)
        if cls is str:
            clean = self._string(item, self._max)
            if clean is not item:
                out.append(path if shown is None else shown)
            out.size += len(clean)
            return clean
        if cls is int:
            if _LEAST_INT < item < _HUGE_INT:
                return item
            out.append(path if shown is None else shown)
            return f"<redacted:oversized bits={item.bit_length()}>"
        if cls is float or cls is bool or item is None:
            return item
        if isinstance(item, Mapping):
            if depth >= MAX_DEPTH:
                out.append(path if shown is None else shown)
                return DEEP_MARK
            listed = None if shown is None else shown + "."
            return self._map(item, path + ".", out, listed, depth + 1)
        if isinstance(item, list | tuple):
            if depth >= MAX_DEPTH:
                out.append(path if shown is None else shown)
                return DEEP_MARK
            changed: list[Any] | None = None
            out.size += ITEM_CHARS * len(item)
            short_items = self._plain_items
            for i, sub in enumerate(item):
                if short_items:  # fast path, as in `_map`: no path, no name to judge
                    sub_cls = type(sub)
                    if (sub_cls is str and len(sub) < _MIN_SECRET_LEN and sub.isascii()) or (
                        sub_cls in _SCALARS and (sub_cls is not int or _LEAST_INT < sub < _HUGE_INT)
                    ):
                        continue
                listed = None if shown is None else f"{shown}.{i}"
                new = self._check(str(i), f"{path}.{i}", sub, out, listed, depth + 1)
                if new is not sub:
                    if changed is None:
                        changed = list(item)
                    changed[i] = new
            if changed is not None:
                return changed
            return item if cls is list and not out.held else list(item)
        if isinstance(item, str | int | float):  # subclasses (enums, ...): record the value
            # the base type's own conversion: a subclass's __str__ / __int__ may say else
            if isinstance(item, str):
                plain: Any = str.__str__(item)
            elif isinstance(item, int):
                plain = int.__index__(item)
            else:
                plain = float.__float__(item)
            return self._check(key, path, plain, out, shown, depth)
        # not JSON: keep a bounded, redacted description; replay treats it as unknown
        out.append(path if shown is None else shown)
        text = _safe_repr(item)
        if self._detect and looks_secret(text):
            return SECRET_MARK
        return f"<non-json {cls.__name__}: {text[:200]}>"
