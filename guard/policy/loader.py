"""Load policies from files, directories, YAML text, dicts, lists and builders.

`parse_policies` turns any source into validated `PolicySpec`s, reporting every problem at
once as one `PolicyError`; `load_policies` compiles them into a `PolicySet`. Loading never
skips a bad file: a policy directory with one malformed file is an error, because silently
dropping a deny rule opens access.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from guard.errors import PolicyError, PolicyProblem
from guard.policy._validate import Validator
from guard.policy._yaml import read_documents
from guard.policy.spec import PolicySpec

if TYPE_CHECKING:
    from guard.policy.policyset import PolicySet

__all__ = ["MAX_POLICY_BYTES", "PolicySource", "load_policies", "parse_policies"]

MAX_POLICY_BYTES: Final = 5 * 1024 * 1024
_SUFFIXES: Final = (".yaml", ".yml")

PolicySource = Any  # str | os.PathLike | Mapping | Iterable[...] | PolicySpec | PolicySet | builder
_KeyLines = dict[int, Mapping[str, int]]  # id(spec) -> line of each top-level key


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
    return PolicySet.from_specs(parse_policies(source))


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
    specs: list[PolicySpec] = []
    problems: list[PolicyProblem] = []
    lines: _KeyLines = {}
    _collect(source, specs, problems, lines, depth=0)
    if not problems:
        _check_set(specs, problems, lines)
    if problems:
        raise PolicyError(problems)
    return specs


# -- sources -------------------------------------------------------------------------------


def _collect(
    source: Any,
    specs: list[PolicySpec],
    problems: list[PolicyProblem],
    lines: _KeyLines,
    depth: int,
) -> None:
    if isinstance(source, PolicySpec):
        _from_spec(source, specs, problems, lines)
    elif isinstance(source, os.PathLike):
        _from_path(Path(source), specs, problems, lines)
    elif isinstance(source, str | bytes):
        _from_string(source, specs, problems, lines)
    elif isinstance(source, Mapping):
        _from_dict(source, "<dict>", specs, problems, lines)
    elif hasattr(source, "to_spec") or hasattr(source, "build"):
        _from_builder(source, specs, problems, lines, depth)
    elif _is_policy_set(source):
        specs.extend(source.policies)
    elif isinstance(source, Iterable) and depth == 0:
        for item in source:
            _collect(item, specs, problems, lines, depth + 1)
    else:
        problems.append(
            PolicyProblem(
                f"cannot load policies from {type(source).__name__}",
                "<policy>",
                hint="pass a path, YAML text, a dict, a PolicySpec, or a list of these",
                code="bad_source",
            )
        )


def _is_policy_set(source: Any) -> bool:
    from guard.policy.policyset import PolicySet

    return isinstance(source, PolicySet)


def _from_builder(
    source: Any,
    specs: list[PolicySpec],
    problems: list[PolicyProblem],
    lines: _KeyLines,
    depth: int,
) -> None:
    """The seed's object form (`PolicyConfig`) or a fluent `policy(...)` builder, built or not."""
    try:
        built = source if hasattr(source, "to_spec") else source.build()
        spec = built.to_spec()
    except PolicyError as exc:
        problems.extend(exc.problems)
        return
    except (ValueError, TypeError, AttributeError) as exc:
        problems.append(_problem("bad_value", f"cannot build the policy: {exc}", "<builder>"))
        return
    if not isinstance(spec, PolicySpec):
        problems.append(
            _problem("bad_source", f"to_spec() returned {type(spec).__name__}", "<builder>")
        )
        return
    _collect(spec, specs, problems, lines, depth)


def _from_string(
    text: str | bytes, specs: list[PolicySpec], problems: list[PolicyProblem], lines: _KeyLines
) -> None:
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            problems.append(_problem("unreadable", f"policy text is not UTF-8: {exc}", "<text>"))
            return
        _from_text(text, "<text>", specs, problems, lines)
        return
    if "\n" not in text and len(text) < 4096:
        path = Path(text).expanduser()
        try:
            exists = path.exists()
        except (OSError, ValueError):  # too long for a file name, NUL bytes: not a path
            exists = False
        if exists or (":" not in text and "\0" not in text) or text.endswith(_SUFFIXES):
            _from_path(path, specs, problems, lines)
            return
    _from_text(text, "<text>", specs, problems, lines)


def _from_path(
    path: Path, specs: list[PolicySpec], problems: list[PolicyProblem], lines: _KeyLines
) -> None:
    try:
        is_dir = path.is_dir()
    except OSError as exc:
        problems.append(_problem("unreadable", f"cannot access {path}: {exc.strerror}", str(path)))
        return
    if not is_dir:
        _from_file(path, specs, problems, lines)
        return
    try:
        # Not `is_file()`: a dangling symlink named like a policy is an unreadable policy,
        # not something to skip. Dotfiles are editors' backups and lock files.
        files = sorted(
            (
                p
                for p in path.iterdir()
                if p.suffix in _SUFFIXES and not p.name.startswith(".") and not p.is_dir()
            ),
            key=lambda p: p.name,
        )
    except OSError as exc:
        problems.append(
            _problem("unreadable", f"cannot list directory {path}: {exc.strerror}", str(path))
        )
        return
    if not files:
        problems.append(
            _problem(
                "empty",
                f"directory {path} holds no policy files",
                str(path),
                hint="policy files end in .yaml or .yml (subdirectories are not searched)",
            )
        )
    for file in files:
        _from_file(file, specs, problems, lines)


def _from_file(
    path: Path, specs: list[PolicySpec], problems: list[PolicyProblem], lines: _KeyLines
) -> None:
    source = str(path)
    try:
        size = path.stat().st_size
        if size > MAX_POLICY_BYTES:
            problems.append(
                _problem(
                    "too_large",
                    f"policy file is {size:,} bytes; the limit is {MAX_POLICY_BYTES:,}",
                    source,
                    hint="split it into several files in one directory",
                )
            )
            return
        data = path.read_bytes()
    except FileNotFoundError:
        problems.append(_problem("unreadable", f"no such policy file: {path}", source))
        return
    except OSError as exc:
        problems.append(_problem("unreadable", f"cannot read {path}: {exc.strerror}", source))
        return
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        problems.append(_problem("unreadable", f"policy file is not UTF-8 text: {exc}", source))
        return
    _from_text(text, source, specs, problems, lines)


def _from_text(
    text: str, source: str, specs: list[PolicySpec], problems: list[PolicyProblem], lines: _KeyLines
) -> None:
    if len(text) > MAX_POLICY_BYTES:
        problems.append(
            _problem("too_large", f"policy text exceeds {MAX_POLICY_BYTES:,} characters", source)
        )
        return
    docs, yaml_problems = read_documents(text)
    problems.extend(_problem(p.code, p.message, source, p.line, hint=p.hint) for p in yaml_problems)
    if yaml_problems:
        return
    if not docs:
        problems.append(
            _problem(
                "empty",
                "no policy here: the YAML is empty",
                source,
                hint="a policy needs at least `name:` and `rules:`",
            )
        )
        return
    validator = Validator(source)
    for doc in docs:
        problems.extend(
            _problem(p.code, p.message, source, p.line, hint=p.hint) for p in doc.problems
        )
        if doc.value is None and doc.problems:  # an alias bomb: nothing more to say
            continue
        if isinstance(doc.value, list):  # one document holding a list of policies
            from guard.policy.dump import dump_spec

            item_lines = getattr(doc.value, "item_lines", [])
            for i, item in enumerate(doc.value):
                spec = validator.policy(item, "", prefix=f"[{i}]", line=item_lines[i])
                if spec is not None:
                    specs.append(_with_text(spec, dump_spec(spec), validator.key_lines))
        else:
            spec = validator.policy(doc.value, doc.text, line=doc.line)
            if spec is not None:
                specs.append(spec)
    problems.extend(validator.problems)
    lines.update(validator.key_lines)


def _from_dict(
    data: Mapping[str, Any],
    source: str,
    specs: list[PolicySpec],
    problems: list[PolicyProblem],
    lines: _KeyLines,
) -> None:
    validator = Validator(source)
    spec = validator.policy(data, "")
    problems.extend(validator.problems)
    lines.update(validator.key_lines)
    if spec is not None:
        from guard.policy.dump import dump_spec

        specs.append(_with_text(spec, dump_spec(spec), validator.key_lines))


def _from_spec(
    spec: PolicySpec, specs: list[PolicySpec], problems: list[PolicyProblem], lines: _KeyLines
) -> None:
    """Re-check a spec built in Python (builders, hand-made specs) as if it were written out."""
    from guard.policy.dump import dump_spec, spec_to_dict

    validator = Validator(spec.source)
    validator.policy(spec_to_dict(spec), "")
    problems.extend(validator.problems)
    if not validator.problems:
        specs.append(spec if spec.text else _with_text(spec, dump_spec(spec), {}))


def _with_text(spec: PolicySpec, text: str, key_lines: _KeyLines) -> PolicySpec:
    from dataclasses import replace

    copy = replace(spec, text=text)
    key_lines[id(copy)] = key_lines.pop(id(spec), {})  # ids of dropped objects get reused
    return copy


# -- the set -------------------------------------------------------------------------------


def _check_set(specs: list[PolicySpec], problems: list[PolicyProblem], lines: _KeyLines) -> None:
    def line(spec: PolicySpec, key: str) -> int | None:
        return lines.get(id(spec), {}).get(key, spec.line)

    def where(spec: PolicySpec, key: str) -> str:
        at = line(spec, key)
        return spec.source if at is None else f"{spec.source}:{at}"

    first: dict[str, PolicySpec] = {}
    for spec in specs:
        earlier = first.setdefault(spec.name, spec)
        if earlier is not spec:
            problems.append(
                _problem(
                    "duplicate_policy",
                    f"policy name `{spec.name}` is already used",
                    spec.source,
                    line(spec, "name"),
                    field="name",
                    hint=f"first defined in {where(earlier, 'name')}; policy names must be unique",
                )
            )
    modes = {s.combining for s in specs if s.combining is not None}
    if len(modes) > 1:
        chosen = next(s for s in specs if s.combining is not None)
        for spec in specs:
            if spec.combining is not None and spec.combining != chosen.combining:
                problems.append(
                    _problem(
                        "combining_conflict",
                        f"`combining: {spec.combining}` conflicts with "
                        f"`combining: {chosen.combining}` in {where(chosen, 'combining')}",
                        spec.source,
                        line(spec, "combining"),
                        field="combining",
                        hint="one policy set decides one way; set `combining` the same "
                        "everywhere, or in one policy only",
                    )
                )


def _problem(
    code: str,
    message: str,
    source: str,
    line: int | None = None,
    *,
    field: str | None = None,
    hint: str | None = None,
) -> PolicyProblem:
    return PolicyProblem(message, source, line, field, hint, code)
