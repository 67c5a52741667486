"""`dump_spec` round-trips any valid spec: generated policies, awkward strings included."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from guard.policy.dump import dump_spec
from guard.policy.loader import parse_policies
from guard.policy.spec import (
    AgentMatch,
    Condition,
    ConditionGroup,
    ConditionNode,
    CustomCondition,
    PolicySpec,
    PromptMatch,
    ResourceMatch,
    RuleSpec,
    TemplateMatch,
    ToolMatch,
)

# Any text YAML can carry: `yes`, `null`, `1.0`, `- x`, `: `, `#`, quotes, unicode, newlines.
_text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=12)
_tricky = st.sampled_from(
    [
        "yes",
        "no",
        "null",
        "~",
        "1.0",
        "0x1F",
        "- a",
        "a: b",
        "#",
        "'",
        '"',
        "*x",
        "&a",
        "!t",
        "[",
        "{",
        " lead",
        "trail ",
        "multi\nline",
        "tab\there",
        "é",
        "😀",
    ]
)
_string = st.one_of(_text, _tricky)
_name = _string.filter(lambda s: bool(s.strip()))
_strings = st.lists(_string, max_size=3).map(tuple)
_maybe = st.one_of(st.none(), _strings)
_scalar = st.one_of(st.none(), st.booleans(), st.integers(-(2**40), 2**40), _string)


def _leaf() -> st.SearchStrategy[ConditionNode]:
    field = st.sampled_from(["user.id", "tool.name", "tool.args.x", "request.action"])
    return st.one_of(
        st.builds(Condition, field, st.just("equals"), _scalar),
        st.builds(Condition, field, st.just("in"), st.lists(_scalar, max_size=3).map(tuple)),
        st.builds(Condition, field, st.just("starts_with"), _string),
        st.builds(Condition, st.just("tool.args.n"), st.just("gt"), st.integers(-5, 5)),
        st.builds(
            Condition, field, st.just("regex"), st.sampled_from(["^a.*$", "x|y", "[0-9]{3}"])
        ),
        st.builds(
            Condition,
            st.just("request.time.hour"),
            st.just("lt"),
            st.integers(0, 23),
            timezone=st.sampled_from([None, "UTC", "Europe/Paris"]),
        ),
        st.builds(
            CustomCondition,
            _name,
            st.one_of(st.none(), _scalar, st.dictionaries(_name, _scalar, max_size=2)),
        ),
    )


_conditions = st.recursive(
    _leaf(),
    lambda inner: st.one_of(
        st.builds(
            ConditionGroup,
            st.sampled_from(["all", "any"]),
            st.lists(inner, min_size=1, max_size=3).map(tuple),
        ),
        st.builds(ConditionGroup, st.just("not"), st.tuples(inner)),
    ),
    max_leaves=6,
)

_rule = st.builds(
    RuleSpec,
    name=_name,
    effect=st.sampled_from(["allow", "deny"]),
    description=st.one_of(st.none(), _string),
    priority=st.integers(-1000, 1000),
    agents=st.one_of(st.none(), st.builds(AgentMatch, _maybe, _maybe, _maybe, _maybe)),
    tools=st.one_of(st.none(), st.builds(ToolMatch, _maybe, _maybe, _maybe, _maybe)),
    resources=st.one_of(st.none(), st.builds(ResourceMatch, _maybe, _maybe, _maybe, _maybe)),
    resource_templates=st.one_of(
        st.none(), st.builds(TemplateMatch, _maybe, _maybe, _maybe, _maybe)
    ),
    prompts=st.one_of(st.none(), st.builds(PromptMatch, _maybe, _maybe, _maybe)),
    actions=st.one_of(
        st.just(("*",)),
        st.lists(
            st.sampled_from(["call", "read", "get", "list", "c*"]), min_size=1, max_size=3
        ).map(tuple),
    ),
    conditions=st.lists(_conditions, max_size=3).map(tuple),
)

_spec = st.builds(
    PolicySpec,
    name=_name,
    rules=st.lists(_rule, max_size=4, unique_by=lambda r: r.name).map(tuple),
    description=st.one_of(st.none(), _string),
    version=st.one_of(st.just("1.0"), _name),
    default_effect=st.sampled_from(["allow", "deny"]),
    combining=st.sampled_from([None, "first_match", "deny_overrides"]),
    tags=_strings,
    created_by=st.one_of(st.none(), _string),
)


def _strip(spec: PolicySpec) -> PolicySpec:
    def bare(node: Any) -> Any:
        if isinstance(node, ConditionGroup):
            return replace(node, items=tuple(bare(i) for i in node.items), line=None)
        return replace(node, line=None)

    rules = tuple(
        replace(r, line=None, conditions=tuple(bare(c) for c in r.conditions)) for r in spec.rules
    )
    return replace(spec, rules=rules, source="", text="", line=None)


@settings(max_examples=200, deadline=None)
@given(_spec)
def test_dump_spec_round_trips(spec: PolicySpec) -> None:
    text = dump_spec(spec)
    [back] = parse_policies(text)
    assert _strip(back) == _strip(spec)
    assert dump_spec(back) == text  # canonical: a second dump is the same bytes


@settings(max_examples=60, deadline=None)
@given(_spec)
def test_spec_source_keeps_the_spec_and_gains_canonical_text(spec: PolicySpec) -> None:
    [back] = parse_policies(spec)
    assert back == replace(spec, text=dump_spec(spec))
