"""Load policies from files, directories, YAML text, dicts, lists and builders.

`parse_policies` turns any source into validated `PolicySpec`s, reporting every problem at
once as one `PolicyError`; `load_policies` compiles them into a `PolicySet`. Loading never
skips a bad file: a policy directory with one malformed file is an error, because silently
dropping a deny rule opens access.
"""

from __future__ import annotations

import errno
import gc
import os
import stat
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from guard.errors import PolicyError, PolicyProblem
from guard.policy._validate import Validator
from guard.policy._yaml import read_documents
from guard.policy.spec import PolicySpec, content_of

if TYPE_CHECKING:
    from guard.policy.policyset import PolicySet

__all__ = [
    "MAX_POLICY_BYTES",
    "PolicySource",
    "load_policies",
    "parse_policies",
    "read_policy_file",
    "text_matches",
]

MAX_POLICY_BYTES: Final = 5 * 1024 * 1024
_SUFFIXES: Final = (".yaml", ".yml")

PolicySource = Any  # str | os.PathLike | Mapping | Iterable[...] | PolicySpec | PolicySet | builder


def load_policies(source: PolicySource) -> PolicySet:
    """Load and compile policies from any source into an immutable `PolicySet`.

    Args:
        source: a YAML file or a directory of `*.yaml`/`*.yml` files (sorted by name); YAML
            text; a dict (one policy); a list of any of these; a `PolicySpec`; a fluent
            builder's result; or a `PolicySet`, returned as is.

    Raises:
        PolicyError: listing every problem found, each with file, line, field and hint.

    ```python
    policies = load_policies("policies.yaml")
    policies = load_policies({"name": "p", "rules": [{"name": "r", "effect": "allow"}]})
    ```
    """
    from guard.policy.policyset import PolicySet

    if isinstance(source, PolicySet):
        return source
    specs = parse_policies(source)
    with _gc_paused():  # compiling, too, builds many objects that all stay alive
        return PolicySet.from_specs(specs)


def parse_policies(source: PolicySource) -> list[PolicySpec]:
    """Validate any policy source into `PolicySpec`s without compiling them.

    Accepts the same sources as `load_policies`. Policy names must be unique across the
    result, and policies that set `combining` must agree on it.

    Raises:
        PolicyError: listing every problem found.

    ```python
    [spec] = parse_policies("name: p\\nrules: []\\n")
    assert spec.source == "<text>" and spec.default_effect == "deny"
    ```
    """
    loading = _Loading()
    with _gc_paused():
        loading.add(source)
    loading.check_set()  # among the policies that did load: every problem at once
    if loading.problems:
        raise PolicyError(loading.problems)
    return [spec for spec, _ in loading.found]


def directory_files(path: Path) -> list[Path]:
    """The policy files of a directory, in load order: `*.yaml` and `*.yml` directly in it
    (subdirectories are not searched), by name. Not `is_file()`: a dangling symlink, or a
    directory, named like a policy is an unreadable policy, not something to skip (a bind
    mount whose file is missing is an empty directory of the file's name: skipping it
    would drop its deny rules). Dotfiles are editors' backups and lock files. Raises
    `OSError` when the directory cannot be listed."""
    return sorted(
        (p for p in path.iterdir() if p.suffix in _SUFFIXES and not p.name.startswith(".")),
        key=lambda p: p.name,
    )


class _TooLarge(OSError):
    def __init__(self, size: int | None) -> None:
        # size None: more than the limit (read from something without a size)
        over = "over the limit of" if size is None else f"{size:,} bytes; the limit is"
        self.why = f"{over} {MAX_POLICY_BYTES:,} bytes"
        super().__init__(errno.EFBIG, f"file too large: {self.why}")


def read_policy_file(path: Path, *, regular_only: bool = False) -> bytes:
    """A policy file's bytes, at most `MAX_POLICY_BYTES` of them (a pipe or a device has
    no size to check first: `/dev/zero` would be read until memory ran out). With
    `regular_only`, anything but a regular file is refused: a FIFO that happens to sit in
    a policy directory would block a reload, or the watcher, until something wrote to it.
    (A path named explicitly may be one: `<(generate-policy)`.) Opened without blocking
    and checked on the open descriptor, so a file swapped for a FIFO between a check and
    the read is refused too. Raises `OSError` (its `strerror` says why)."""
    flags = os.O_RDONLY | getattr(os, "O_CLOEXEC", 0)
    fd = os.open(path, flags | os.O_NONBLOCK if regular_only else flags)
    try:
        st = os.fstat(fd)
        if regular_only and stat.S_ISDIR(st.st_mode):
            raise OSError(errno.EISDIR, "is a directory, not a policy file")
        if regular_only and not stat.S_ISREG(st.st_mode):
            raise OSError(errno.EINVAL, "not a regular file")
        if st.st_size > MAX_POLICY_BYTES:
            raise _TooLarge(st.st_size)
        chunks = []
        left = MAX_POLICY_BYTES + 1  # (a file growing while read is cut: then too large)
        while left > 0 and (chunk := os.read(fd, min(left, 1 << 20))):
            chunks.append(chunk)
            left -= len(chunk)
    finally:
        os.close(fd)
    data = b"".join(chunks)
    if len(data) > MAX_POLICY_BYTES:
        raise _TooLarge(None)
    return data


def read_input_text(path: str | Path) -> str:
    """The text of a file the CLI reads beside policies (a suite, a request), read as a
    policy file is: at most `MAX_POLICY_BYTES` (`mcp-guard test /dev/zero` stops there).
    Raises `OSError` (its `strerror` says why, the limit included) or
    `UnicodeDecodeError`."""
    return read_policy_file(Path(path)).decode("utf-8")


# -- sources -------------------------------------------------------------------------------


class _Loading:
    """One `parse_policies` call: the specs found so far and every problem met."""

    def __init__(self) -> None:
        # each spec with the line of each of its top-level keys (YAML sources only), for
        # problems that only show across policies
        self.found: list[tuple[PolicySpec, Mapping[str, int]]] = []
        self.problems: list[PolicyProblem] = []

    def add(self, source: Any, nested: bool = False) -> None:
        if isinstance(source, PolicySpec):
            self._spec(source)
        elif isinstance(source, os.PathLike):
            self._path(Path(source))
        elif isinstance(source, bytes):
            try:
                self._text(source.decode("utf-8-sig"), "<text>")
            except UnicodeDecodeError as exc:
                self._problem("unreadable", f"policy text is not UTF-8: {exc}", "<text>")
        elif isinstance(source, str):
            self._string(source)
        elif isinstance(source, Mapping):
            self._dict(source)
        elif hasattr(source, "to_spec") or hasattr(source, "build"):
            self._builder(source)
        elif _is_policy_set(source):
            self.found.extend((spec, {}) for spec in source.policies)
        elif isinstance(source, Iterable) and not nested:
            for item in source:
                self.add(item, nested=True)
        else:
            self._problem(
                "bad_source",
                f"cannot load policies from {type(source).__name__}",
                "<policy>",
                hint="pass a path, YAML text, a dict, a PolicySpec, or a list of these",
            )

    def _string(self, text: str) -> None:
        """A path when it names one (or looks like one), else YAML text."""
        if "\n" not in text and len(text) < 4096:
            try:
                path = Path(text).expanduser()
            except RuntimeError:  # `~nosuchuser/...`: no home directory to expand to
                path = Path(text)
            try:
                exists = path.exists()
            except (OSError, ValueError):  # too long for a file name, NUL bytes: not a path
                exists = False
            if exists or (":" not in text and "\0" not in text) or text.endswith(_SUFFIXES):
                self._path(path)
                return
        self._text(text, "<text>")

    def _path(self, path: Path) -> None:
        try:
            is_dir = path.is_dir()
        except OSError as exc:
            self._problem("unreadable", f"cannot access {path}: {exc.strerror}", str(path))
            return
        if not is_dir:
            self._file(path)
            return
        try:
            files = directory_files(path)
        except OSError as exc:
            self._problem("unreadable", f"cannot list directory {path}: {exc.strerror}", str(path))
            return
        if not files:
            self._problem(
                "empty",
                f"directory {path} holds no policy files",
                str(path),
                hint="policy files end in .yaml or .yml (subdirectories are not searched)",
            )
        for file in files:
            self._file(file, listed=True)

    def _file(self, path: Path, *, listed: bool = False) -> None:
        """Load the file `path`; `listed`: found in a directory listing (not named)."""
        source = str(path)
        try:
            data = read_policy_file(path, regular_only=listed)
        except FileNotFoundError:
            self._problem("unreadable", f"no such policy file: {path}", source)
            return
        except _TooLarge as exc:
            self._problem(
                "too_large",
                f"policy file is {exc.why}",
                source,
                hint="split it into several files in one directory",
            )
            return
        except OSError as exc:
            self._problem("unreadable", f"cannot read {path}: {exc.strerror}", source)
            return
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            self._problem("unreadable", f"policy file is not UTF-8 text: {exc}", source)
            return
        self._text(text, source)

    def _text(self, text: str, source: str) -> None:
        if len(text) > MAX_POLICY_BYTES:
            self._problem(
                "too_large", f"policy text exceeds {MAX_POLICY_BYTES:,} characters", source
            )
            return
        docs, yaml_problems = read_documents(text)
        for p in yaml_problems:
            self._problem(p.code, p.message, source, p.line, hint=p.hint)
        if yaml_problems:
            return
        if not docs:
            self._problem(
                "empty",
                "no policy here: the YAML is empty",
                source,
                hint="a policy needs at least `name:` and `rules:`",
            )
            return
        validator = Validator(source)
        for doc in docs:
            for p in doc.problems:
                self._problem(p.code, p.message, source, p.line, field=p.field, hint=p.hint)
            if doc.value is None and doc.problems:  # an alias bomb: nothing more to say
                continue
            if isinstance(doc.value, list):  # one document holding a list of policies
                item_lines = getattr(doc.value, "item_lines", [])
                for i, item in enumerate(doc.value):
                    spec = validator.policy(item, "", prefix=f"[{i}]", line=item_lines[i])
                    if spec is not None:  # its text: a dump of its own, reloadable alone
                        self._found(replace(spec, text=_dump(spec)), item)
            else:
                spec = validator.policy(doc.value, doc.text, line=doc.line)
                if spec is not None:
                    self._found(spec, doc.value)
        self.problems.extend(validator.problems)

    def _dict(self, data: Mapping[str, Any]) -> None:
        validator = Validator("<dict>")
        spec = validator.policy(data, "")
        self.problems.extend(validator.problems)
        if spec is not None:
            self._found(replace(spec, text=_dump(spec)), data)

    def _spec(self, spec: PolicySpec) -> None:
        """Re-check a spec built in Python (builders, hand-made specs) as if written out."""
        from guard.policy.dump import spec_to_dict

        validator = Validator(spec.source)
        checked = validator.policy(spec_to_dict(spec), "")
        self.problems.extend(validator.problems)
        if checked is None or validator.problems:
            return
        if content_of(checked) != content_of(spec):
            # what the text reads back as (`priority: "5"` is 5, a value's lists are
            # tuples): the spec compiled live must be the one replay reloads
            spec = replace(checked, source=spec.source, line=spec.line)
        self._found(spec if text_matches(spec) else replace(spec, text=_dump(spec)), {})

    def _builder(self, source: Any) -> None:
        """The seed's object form (`PolicyConfig`) or a fluent `policy(...)` builder."""
        try:
            built = source if hasattr(source, "to_spec") else source.build()
            spec = built.to_spec()
        except PolicyError as exc:
            self.problems.extend(exc.problems)
            return
        except (ValueError, TypeError, AttributeError) as exc:
            self._problem("bad_value", f"cannot build the policy: {exc}", "<builder>")
            return
        if not isinstance(spec, PolicySpec):
            self._problem("bad_source", f"to_spec() returned {type(spec).__name__}", "<builder>")
            return
        self._spec(spec)

    def _found(self, spec: PolicySpec, doc: Any) -> None:
        self.found.append((spec, getattr(doc, "key_lines", {})))

    def _problem(
        self,
        code: str,
        message: str,
        source: str,
        line: int | None = None,
        *,
        field: str | None = None,
        hint: str | None = None,
    ) -> None:
        self.problems.append(PolicyProblem(message, source, line, field, hint, code))

    # -- the set ---------------------------------------------------------------------------

    def check_set(self) -> None:
        """Problems only visible across policies: duplicate names, disagreeing `combining`."""

        def where(entry: tuple[PolicySpec, Mapping[str, int]], key: str) -> str:
            spec, lines = entry
            at = lines.get(key, spec.line)
            return spec.source if at is None else f"{spec.source}:{at}"

        first: dict[str, tuple[PolicySpec, Mapping[str, int]]] = {}
        for entry in self.found:
            spec, lines = entry
            earlier = first.setdefault(spec.name, entry)
            if earlier is not entry:
                self._problem(
                    "duplicate_policy",
                    f"policy name `{spec.name}` is already used",
                    spec.source,
                    lines.get("name", spec.line),
                    field="name",
                    hint=f"first defined in {where(earlier, 'name')}; policy names must be unique",
                )
        stated = [entry for entry in self.found if entry[0].combining is not None]
        for entry in stated[1:]:
            spec, lines = entry
            chosen = stated[0][0].combining
            if spec.combining != chosen:
                self._problem(
                    "combining_conflict",
                    f"`combining: {spec.combining}` conflicts with "
                    f"`combining: {chosen}` in {where(stated[0], 'combining')}",
                    spec.source,
                    lines.get("combining", spec.line),
                    field="combining",
                    hint="one policy set decides one way; set `combining` the same "
                    "everywhere, or in one policy only",
                )


@contextmanager
def _gc_paused() -> Iterator[None]:
    """Loading allocates hundreds of thousands of small containers that all stay alive;
    the cyclic collector would rescan them over and over (a 10,000-rule file loads about
    three times faster without it). Nothing here creates cycles worth collecting."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _is_policy_set(source: Any) -> bool:
    from guard.policy.policyset import PolicySet

    return isinstance(source, PolicySet)


def text_matches(spec: PolicySpec) -> bool:
    """Whether `spec.text` still says what the spec holds. The content hash is computed
    over the text, and replay loads the text: a spec edited in Python after loading
    (`dataclasses.replace` keeps the old text) must not keep it."""
    if not spec.text:
        return False
    try:
        parsed = parse_policies(spec.text)
    except PolicyError:
        return False
    return len(parsed) == 1 and content_of(parsed[0]) == content_of(spec)


def _dump(spec: PolicySpec) -> str:
    from guard.policy.dump import dump_spec  # imported late: dump needs only the spec

    return dump_spec(spec)
