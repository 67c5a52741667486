"""Differential: what mcp-auth-guard 1.0.0's loader accepts, ours accepts with the same content.

Generated policy documents in the seed's format (valid and invalid values mixed) go to both
loaders. Whenever the seed loads one, ours must load it too and agree on every field,
except where we reject on purpose (documented in the README): duplicate rule names and
condition values the operator cannot use (`in` with a string, a catastrophic regex, ...).
"""

from __future__ import annotations

import copy
import logging
from typing import Any

import mcp_auth_guard.policy.loader as seed_loader
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from guard.errors import PolicyError, PolicyProblem
from guard.policy.loader import parse_policies

DELIBERATE = {"duplicate_rule", "bad_value", "bad_regex", "catastrophic_regex"}

_word = st.sampled_from(["a", "b", "admin", "get_*", "*", "x y", ""])
_words = st.lists(_word, max_size=3)
_odd = st.sampled_from([None, 3, 2.5, True, "text", [], {}, [1], ["ok", 2]])


def _boolean_priority(problem: PolicyProblem) -> bool:
    """`priority: true`, which mcp-auth-guard read as 1: refused on purpose (README, "a
    boolean is not a priority")."""
    field = problem.field or ""
    return (
        problem.code == "wrong_type"
        and field.endswith(".priority")
        and "boolean" in (problem.message)
    )


def _maybe(valid: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Mostly valid; one time in 25 a value of another type (to exercise both rejections)."""
    return st.integers(0, 24).flatmap(lambda i: _odd if i == 0 else valid)


def _optional(keys: dict[str, st.SearchStrategy[Any]]) -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries({}, optional=keys)


_condition = st.fixed_dictionaries(
    {
        "field": _maybe(st.sampled_from(["user.id", "tool.name", "tool.args.n", "user.roles"])),
        "operator": _maybe(
            st.sampled_from(
                [
                    "equals",
                    "not_equals",
                    "in",
                    "not_in",
                    "contains",
                    "not_contains",
                    "starts_with",
                    "ends_with",
                    "regex",
                    "gt",
                    "lt",
                    "gte",
                    "lte",
                    "like",
                ]
            )
        ),
        "value": st.one_of(st.integers(-3, 3), _word, _words, st.booleans(), st.just("^a.*")),
    }
)

_rule = st.builds(
    lambda required, optional: {**required, **optional},
    st.fixed_dictionaries(
        {
            "name": _maybe(st.sampled_from(["r1", "r2", "r3"])),
            "effect": _maybe(st.sampled_from(["allow", "deny", "ALLOW", "permit"])),
        }
    ),
    _optional(
        {
            "description": _maybe(_word),
            "priority": _maybe(st.integers(-5, 500)),
            "actions": _maybe(st.lists(st.sampled_from(["call", "list", "read", "*"]), max_size=2)),
            "agents": _maybe(
                _optional(
                    {
                        "user_id": _maybe(st.one_of(_word, _words)),
                        "roles": _maybe(_words),
                        "agent_id": _maybe(st.one_of(_word, _words)),
                        "patterns": _maybe(_words),
                    }
                )
            ),
            "tools": _maybe(
                _optional({k: _maybe(_words) for k in ("names", "patterns", "namespaces", "tags")})
            ),
            "resources": _maybe(
                _optional({k: _maybe(_words) for k in ("uris", "patterns", "schemes")})
            ),
            "prompts": _maybe(
                _optional({k: _maybe(_words) for k in ("names", "patterns", "tags")})
            ),
            "conditions": _maybe(st.lists(_condition, max_size=2)),
        }
    ),
)

_policy = st.builds(
    lambda required, optional: {**required, **optional},
    st.fixed_dictionaries(
        {
            "name": _maybe(st.sampled_from(["p", "svc"])),
            "rules": _maybe(st.lists(_rule, max_size=3)),
        }
    ),
    _optional(
        {
            "description": _maybe(_word),
            "version": _maybe(st.sampled_from(["1.0", "2", "v3"])),
            "default_effect": _maybe(st.sampled_from(["allow", "deny", "DENY", "Allow", "maybe"])),
            "tags": _maybe(_words),
            "created_by": _maybe(_word),
        }
    ),
)


def _same(ours: Any, theirs: Any) -> bool:
    """Our tuples (or None) against the seed's lists (or None / a single string; an empty
    string, which its matchers read as not given, is None here)."""
    if isinstance(theirs, str):
        theirs = [theirs] if theirs else None
    return list(ours or []) == list(theirs or [])


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_policy)
@example({"name": "p", "rules": [{"name": "r", "effect": "allow", "priority": True}]})
def test_what_the_seed_loads_we_load_the_same(doc: dict[str, Any]) -> None:
    logging.disable(logging.CRITICAL)  # the seed logs every load
    try:
        theirs = seed_loader.PolicyLoader.load_from_dict(copy.deepcopy(doc))
    except ValueError:
        return  # the seed rejects it; we may be more lenient (see the README)
    finally:
        logging.disable(logging.NOTSET)
    try:
        [ours] = parse_policies(doc)
    except PolicyError as err:
        codes = {p.code for p in err.problems if not _boolean_priority(p)}
        assert codes <= DELIBERATE, err
        return
    assert (ours.name, ours.version, ours.description) == (
        theirs.name,
        theirs.version,
        theirs.description,
    )
    assert ours.default_effect == theirs.default_effect
    assert _same(ours.tags, theirs.tags) and ours.created_by == theirs.created_by
    assert len(ours.rules) == len(theirs.rules)
    for mine, seed in zip(ours.rules, theirs.rules, strict=True):
        assert (mine.name, mine.effect, mine.priority, mine.description) == (
            seed.name,
            seed.effect,
            seed.priority,
            seed.description,
        )
        assert list(mine.actions) == seed.actions
        for section, keys in (
            ("agents", ("user_id", "roles", "agent_id", "patterns")),
            ("tools", ("names", "patterns", "namespaces", "tags")),
            ("resources", ("uris", "patterns", "schemes")),
            ("prompts", ("names", "patterns", "tags")),
        ):
            a, b = getattr(mine, section), getattr(seed, section)
            assert (a is None) == (b is None), section
            if a is not None:
                for key in keys:
                    assert _same(getattr(a, key), getattr(b, key)), f"{section}.{key}"
        assert [(c.field, c.operator) for c in mine.conditions] == [  # type: ignore[union-attr]
            (c.field, c.operator) for c in seed.conditions
        ]
