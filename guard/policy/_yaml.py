"""YAML documents with line numbers, `yaml.safe_load` semantics, and bounded alias expansion.

The loader needs more than `yaml.safe_load` gives: the line of every key and list item (so
a problem can name its line), each document's own text (hashed and stored so replay can
reload the exact policy), and protection against alias bombs ("billion laughs"), which
`safe_load` would expand without limit. We compose the node tree with libyaml when it is
available and build the values ourselves.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Final

import yaml
from yaml.constructor import SafeConstructor

__all__ = [
    "MAX_ALIAS_NODES",
    "Document",
    "YamlList",
    "YamlMap",
    "YamlProblem",
    "read_documents",
]

# Nodes that aliases may add on top of those written out; far beyond any real policy.
MAX_ALIAS_NODES: Final = 1_000_000
_MAX_DEPTH: Final = 200  # a policy is about 8 deep; condition groups add a few levels each
_TOO_DEEP: Final = f"a policy nests at most {_MAX_DEPTH} levels deep"


def _event_loader() -> Any:
    """libyaml's parser feeding PyYAML's Python composer.

    libyaml's own composer (`CSafeLoader`) recurses in C without a limit: a document nested
    some tens of thousands deep (`[[[[...`) crashes the process. The Python composer stops
    at the recursion limit with an exception we report, and costs about the same, since
    resolving each scalar's tag runs in Python either way.
    """
    try:
        from yaml._yaml import CParser  # type: ignore[import-not-found,unused-ignore]
    except ImportError:  # no libyaml: the pure-Python loader has the same safe behaviour
        return yaml.SafeLoader
    from yaml.composer import Composer
    from yaml.resolver import Resolver

    class EventLoader(CParser, Composer, Resolver):  # type: ignore[misc,unused-ignore]
        check_node = Composer.check_node
        get_node = Composer.get_node

        def __init__(self, text: str) -> None:
            CParser.__init__(self, text)
            Composer.__init__(self)
            Resolver.__init__(self)

    return EventLoader


_Loader: Any = _event_loader()
_CONSTRUCTOR: Final = SafeConstructor()
_SCALAR_KINDS: Final = {"null", "bool", "int", "float", "str", "timestamp", "binary"}
_SCALARS: Final = {
    tag: fn
    for tag, fn in SafeConstructor.yaml_constructors.items()
    if tag is not None and tag.rsplit(":", 1)[-1] in _SCALAR_KINDS
}
_MAP_TAG: Final = "tag:yaml.org,2002:map"
_SEQ_TAG: Final = "tag:yaml.org,2002:seq"
_STR_TAG: Final = "tag:yaml.org,2002:str"


class YamlMap(dict[Any, Any]):
    """A mapping that remembers the 1-based line of itself, of each key, and each scalar's text."""

    __slots__ = ("key_lines", "line", "raw")

    def __init__(self, line: int | None = None) -> None:  # dict.__new__ made it empty already
        self.line = line
        self.key_lines: dict[Any, int] = {}
        self.raw: dict[Any, str] = {}  # scalar values as written (`version: 1.10` stays "1.10")


class YamlList(list[Any]):
    """A sequence that remembers the 1-based line of itself and of each item."""

    __slots__ = ("item_lines", "line")

    def __init__(self, line: int | None = None) -> None:
        self.line = line
        self.item_lines: list[int] = []


@dataclass(frozen=True, slots=True)
class YamlProblem:
    code: str
    message: str
    line: int | None = None
    hint: str | None = None
    field: str | None = None


@dataclass(slots=True)
class Document:
    """One YAML document: its value (`YamlMap`/`YamlList`/scalar), first line, and text."""

    value: Any
    line: int
    text: str
    problems: list[YamlProblem] = field(default_factory=list)


def read_documents(text: str) -> tuple[list[Document], list[YamlProblem]]:
    """Parse every document of `text`; syntax errors come back as problems, never raised.

    Empty documents (a stray `---`) are dropped. Per-document problems (duplicate keys,
    unsupported tags, non-string keys) are on each `Document`.

    ```python
    docs, problems = read_documents("name: a\\nrules: []\\n")
    docs[0].value["name"], docs[0].value.key_lines["rules"]  # ('a', 2)
    ```
    """
    lines = text.splitlines(keepends=True)
    nodes: list[yaml.Node] = []
    loader = _Loader(text)
    try:
        while loader.check_node():
            nodes.append(loader.get_node())
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        message = str(exc.problem or exc.context)
        if exc.context and exc.problem:
            ctx = exc.context_mark
            started = f" on line {ctx.line + 1}" if ctx is not None and ctx.line + 1 != line else ""
            message = f"{exc.problem} ({exc.context}{started})"
        hint = None
        if line is not None and "\t" in (text.splitlines()[line - 1 : line] or [""])[0]:
            hint = "YAML indents with spaces, not tabs"
        return [], [YamlProblem("yaml_syntax", f"invalid YAML: {message}", line, hint)]
    except yaml.YAMLError as exc:  # reader errors: control characters, bad encoding
        return [], [YamlProblem("yaml_syntax", f"invalid YAML: {exc}", None)]
    except RecursionError:
        return [], [YamlProblem("yaml_syntax", "YAML nested too deeply", None, _TOO_DEEP)]
    finally:
        loader.dispose()

    docs: list[Document] = []
    start = 0
    for i, node in enumerate(nodes):
        end_mark = node.end_mark
        end = end_mark.line if end_mark.column == 0 else end_mark.line + 1
        while end < len(lines) and lines[end].startswith("..."):
            end += 1  # a document end marker belongs to the document it ends
        # A document's text runs from the end of the previous one (its comments and `---`
        # included) to its own end; the last one runs to the end of the file.
        last = i == len(nodes) - 1
        doc_text = text if len(nodes) == 1 else "".join(lines[start : None if last else end])
        start = end
        if node.tag == "tag:yaml.org,2002:null" and node.value in ("", "~", "null"):
            continue
        builder = _Builder()
        try:
            value = builder.build(node)
        except _AliasBomb as exc:
            docs.append(Document(None, node.start_mark.line + 1, doc_text, [exc.problem]))
            continue
        docs.append(Document(value, node.start_mark.line + 1, doc_text, builder.problems))
    return docs, []


class _AliasBomb(Exception):
    def __init__(self, problem: YamlProblem) -> None:
        self.problem = problem


class _Builder:
    """Turns a node tree into `YamlMap`/`YamlList`/scalars, collecting problems."""

    def __init__(self) -> None:
        self.problems: list[YamlProblem] = []
        self._active: set[int] = set()
        self._path: list[str] = []  # where `_value` is: ["rules", "[2]", "tools"]
        # Containers already built, by node: an alias yields the same object again. Building
        # twice would also re-read a mapping whose merge keys were already flattened.
        self._built: dict[int, Any] = {}

    def build(self, node: yaml.Node) -> Any:
        self._check_aliases(node)
        return self._value(node)

    def _check_aliases(self, root: yaml.Node) -> None:
        """Bound what aliases can expand to before expanding anything, in linear time."""
        sizes: dict[int, int] = {}
        distinct = 0

        def size(node: yaml.Node, depth: int) -> int:
            nonlocal distinct
            key = id(node)
            if key in sizes:
                return sizes[key]
            if key in self._active:
                raise _AliasBomb(
                    YamlProblem(
                        "yaml_alias",
                        "recursive YAML alias: a node contains itself",
                        node.start_mark.line + 1,
                        "copy the data instead of referring to an enclosing anchor",
                    )
                )
            if depth > _MAX_DEPTH:
                line = node.start_mark.line + 1
                raise _AliasBomb(
                    YamlProblem("yaml_syntax", "YAML nested too deeply", line, _TOO_DEEP)
                )
            distinct += 1
            total = 1
            if isinstance(node, yaml.MappingNode | yaml.SequenceNode):
                self._active.add(key)
                children = (
                    [n for pair in node.value for n in pair]
                    if isinstance(node, yaml.MappingNode)
                    else node.value
                )
                for child in children:
                    total += size(child, depth + 1)
                self._active.discard(key)
            sizes[key] = total
            return total

        expanded = size(root, 0)
        if expanded - distinct > MAX_ALIAS_NODES:
            raise _AliasBomb(
                YamlProblem(
                    "yaml_alias",
                    f"YAML aliases expand to {expanded:,} nodes (limit {MAX_ALIAS_NODES:,} "
                    "beyond those written out)",
                    root.start_mark.line + 1,
                    "this looks like an alias bomb ('billion laughs'); write the data out",
                )
            )

    def _field(self, last: str | None = None) -> str | None:
        """The dotted field path (`rules[2].tools`) of the node being built, or a child's."""
        parts = [*self._path, last] if last is not None else self._path
        text = ""
        for part in parts:
            text += part if part.startswith("[") or not text else "." + part
        return text or None

    def _problem(
        self, code: str, message: str, line: int, hint: str | None = None, last: str | None = None
    ) -> None:
        self.problems.append(YamlProblem(code, message, line, hint, self._field(last)))

    def _value(self, node: yaml.Node) -> Any:
        line = node.start_mark.line + 1
        if node.tag not in (_MAP_TAG, _SEQ_TAG, _STR_TAG) and node.tag not in _SCALARS:
            self._problem(
                "yaml_tag",
                f"unsupported YAML tag {node.tag!r}",
                line,
                "policies use plain YAML only (safe_load semantics): remove the tag",
            )
            return None  # nothing of an unsupported object reaches the policy
        built = self._built.get(id(node))
        if built is not None:
            return built
        if isinstance(node, yaml.MappingNode):
            # Keys written here may override keys merged in with `<<`; only two written keys
            # with the same name are a mistake.
            written = {id(k) for k, _ in node.value}
            try:
                _CONSTRUCTOR.flatten_mapping(node)  # `<<: *base` merge keys, as safe_load does
            except yaml.MarkedYAMLError as exc:
                self._problem("yaml_syntax", f"invalid YAML: {exc.problem}", line)
            result = self._built[id(node)] = YamlMap(line)
            merged: set[str] = set()
            for key_node, value_node in node.value:
                key = self._value(key_node)
                key_line = key_node.start_mark.line + 1
                if not isinstance(key, str):
                    key = str(key_node.value)
                    self._problem(
                        "non_string_key",
                        f"key {key} is not a string",
                        key_line,
                        f'quote it: "{key}"',
                        last=key,
                    )
                elif key in result and id(key_node) in written and key not in merged:
                    self._problem(
                        "duplicate_key",
                        f"key `{key}` appears twice in one mapping",
                        key_line,
                        f"the first is on line {result.key_lines[key]}; keep one",
                        last=key,
                    )
                    continue
                if id(key_node) in written:
                    merged.discard(key)
                else:
                    merged.add(key)
                self._path.append(key)
                result[key] = self._value(value_node)
                self._path.pop()
                result.key_lines[key] = key_line
                if isinstance(value_node, yaml.ScalarNode):
                    result.raw[key] = value_node.value
            return result
        if isinstance(node, yaml.SequenceNode):
            items = self._built[id(node)] = YamlList(line)
            for i, item in enumerate(node.value):
                self._path.append(f"[{i}]")
                items.append(self._value(item))
                self._path.pop()
                items.item_lines.append(item.start_mark.line + 1)
            return items
        if node.tag == _STR_TAG:
            return node.value
        constructor = _SCALARS[node.tag]
        try:
            return constructor(_CONSTRUCTOR, node)
        except (yaml.YAMLError, ValueError) as exc:
            self._problem("yaml_syntax", f"invalid YAML value: {exc}", line)
            return node.value
        except (AttributeError, KeyError, TypeError):
            # an explicit tag (`!!timestamp 'x'`, `!!bool 'x'`) skips the resolver's check
            # of the text, and PyYAML's constructor then fails on it in its own way
            kind = node.tag.rsplit(":", 1)[-1]
            self._problem("yaml_syntax", f"invalid YAML value: not a {kind}", line)
            return node.value
