"""The YAML layer reads exactly what `yaml.safe_load` reads, plus lines, per-document text
and limits."""

from __future__ import annotations

from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from guard.policy._yaml import MAX_ALIAS_NODES, read_documents

SAMPLES = [
    "a: 1\nb: [1, 2.5, -3, 0x1F, 0o17, 1e3, .inf, -.inf]\nc: {d: null, e: ~, f: true, g: off}\n",
    "when: 2024-05-01\nat: 2024-05-01T12:30:00Z\nraw: !!binary aGVsbG8=\ns: !!str 123\n",
    "base: &b {x: 1, y: 2}\nother:\n  <<: *b\n  y: 3\n",
    "a: &a {p: 1}\nb: &b {q: 2}\nc:\n  <<: [*a, *b]\n  r: 3\n",
    "list: &l [1, 2]\nsame: *l\n",
    "base: &b {x: 1}\nderived: &d\n  <<: *b\n  x: 2\nagain: *d\n",
    "text: |\n  line one\n  line two\nfolded: >\n  one\n  two\n",
    "'quoted key': \"x\\ty\"\nunicode: é😀\nempty: ''\n",
    "- 1\n- [2, [3, {k: v}]]\n",
    "just a scalar\n",
]


@pytest.mark.parametrize("text", SAMPLES)
def test_values_equal_safe_load(text: str) -> None:
    [doc], problems = read_documents(text)
    assert not problems and not doc.problems
    assert doc.value == yaml.safe_load(text)


_key = st.text(st.characters(blacklist_categories=("Cs",)), max_size=6)
_scalar = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=False),
    st.text(st.characters(blacklist_categories=("Cs",)), max_size=8),
)
_data = st.recursive(
    _scalar,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(_key, inner, max_size=4)),
    max_leaves=20,
)


@settings(max_examples=200, deadline=None)
@given(_data.filter(lambda d: d is not None), st.sampled_from([True, False]))
def test_generated_documents_equal_safe_load(data: Any, flow: bool) -> None:
    text = yaml.safe_dump(data, default_flow_style=flow, allow_unicode=True)
    [doc], problems = read_documents(text)
    assert not problems and not doc.problems
    assert doc.value == yaml.safe_load(text)


@settings(max_examples=100, deadline=None)
@given(st.lists(_data, min_size=1, max_size=3), st.lists(st.integers(0, 2), min_size=2, max_size=6))
def test_generated_aliases_equal_safe_load(parts: list[Any], picks: list[int]) -> None:
    # the same objects in several places: safe_dump writes anchors and aliases for them
    shared = [{"inner": p} for p in parts]
    data = {f"k{i}": shared[pick % len(shared)] for i, pick in enumerate(picks)}
    text = yaml.safe_dump(data)
    [doc], problems = read_documents(text)
    assert not problems and not doc.problems
    assert doc.value == yaml.safe_load(text)


def test_lines_of_keys_items_and_containers() -> None:
    text = "name: p\nrules:\n  - name: a\n    tools:\n      names: [x]\n  - name: b\n"
    [doc], _ = read_documents(text)
    assert doc.value.key_lines == {"name": 1, "rules": 2}
    rules = doc.value["rules"]
    assert rules.item_lines == [3, 6]
    assert rules[0].line == 3 and rules[0].key_lines["tools"] == 4
    assert rules[0]["tools"].line == 5  # a block mapping starts at its first key


def test_scalars_as_written() -> None:
    [doc], _ = read_documents("version: 1.10\nquoted: '2.0'\n")
    assert doc.value == {"version": 1.1, "quoted": "2.0"}
    assert doc.value.raw == {"version": "1.10", "quoted": "2.0"}


def test_each_document_has_its_own_text_and_lines() -> None:
    text = "# head\na: 1\n---\n# two\nb: 2\n...\n---\nc: 3\n--- [d]\n"
    docs, _ = read_documents(text)
    assert [d.value for d in docs] == [{"a": 1}, {"b": 2}, {"c": 3}, ["d"]]
    assert [d.line for d in docs] == [2, 5, 8, 9]
    assert "".join(d.text for d in docs) == text  # nothing lost, nothing repeated
    for doc in docs:
        [again], _ = read_documents(doc.text)
        assert again.value == doc.value


def test_empty_documents_are_dropped() -> None:
    assert read_documents("") == ([], [])
    assert read_documents("# only a comment\n") == ([], [])
    docs, _ = read_documents("---\n---\na: 1\n---\n")
    assert [d.value for d in docs] == [{"a": 1}]


def test_alias_expansion_is_bounded_in_linear_time() -> None:
    # each level multiplies by 10: 10**7 nodes if expanded, 80 written
    lines = ["l0: &l0 [" + ", ".join(["x"] * 10) + "]"]
    for i in range(1, 8):
        lines.append(f"l{i}: &l{i} [" + ", ".join([f"*l{i - 1}"] * 10) + "]")
    [doc], _ = read_documents("\n".join(lines) + "\n")
    assert doc.value is None
    [problem] = doc.problems
    assert problem.code == "yaml_alias" and f"{MAX_ALIAS_NODES:,}" in problem.message


def test_modest_aliases_are_fine() -> None:
    text = "roles: &r [admin, ops]\n" + "".join(f"k{i}: *r\n" for i in range(1000))
    [doc], _ = read_documents(text)
    assert not doc.problems and doc.value["k999"] == ["admin", "ops"]


def test_syntax_error_names_where_the_construct_started() -> None:
    docs, [problem] = read_documents("a: 1\nb: [1, 2\nc: 3\n")
    assert docs == [] and problem.code == "yaml_syntax"
    assert "flow sequence on line 2" in problem.message


def test_tab_indentation_gets_a_hint() -> None:
    _, [problem] = read_documents("a:\n\t- b\n")
    assert problem.hint == "YAML indents with spaces, not tabs"
