"""`make_request` and `make_decision`, the hot paths' builders, give exactly what the
constructors give: the same class, fields, equality, hash, repr, immutability, copies."""

from __future__ import annotations

import dataclasses
import pickle
from datetime import UTC, datetime
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from guard.policy.model import (
    AccessRequest,
    Decision,
    Principal,
    Resource,
    make_decision,
    make_request,
)

texts = st.text(max_size=8)
optional = st.none() | texts
names = st.tuples(texts, texts).map(lambda t: tuple(t))


def refusal(obj: Any, name: str) -> type[Exception] | None:
    """What writing attribute `name` of `obj` raises (a frozen dataclass with slots refuses
    a field with `FrozenInstanceError`, and on Python 3.11 another name with `TypeError`)."""
    try:
        setattr(obj, name, None)
    except Exception as exc:
        return type(exc)
    return None


def same(built: Any, made: Any) -> None:
    assert type(made) is type(built)
    assert made == built
    assert hash(made) == hash(built)
    assert repr(made) == repr(built)
    assert dataclasses.asdict(made) == dataclasses.asdict(built)
    assert pickle.loads(pickle.dumps(made)) == built
    first = dataclasses.fields(made)[0].name
    assert refusal(made, first) is refusal(built, first) is dataclasses.FrozenInstanceError
    assert refusal(made, "extra") is refusal(built, "extra") is not None
    assert dataclasses.replace(made, **{first: getattr(built, first)}) == built


@given(
    allowed=st.booleans(), reason=texts, rule=optional, policy=optional, matched=names,
    errors=names, policy_hash=texts, rules=st.integers(0, 99),
    eval_us=st.floats(allow_nan=False), message=texts,
)  # fmt: skip
def test_make_decision_is_the_constructor(
    allowed: bool, reason: str, rule: str | None, policy: str | None, matched: tuple[str, ...],
    errors: tuple[str, ...], policy_hash: str, rules: int, eval_us: float, message: str,
) -> None:  # fmt: skip
    values = (allowed, reason, rule, policy, matched, errors, policy_hash, rules, eval_us, message)
    same(Decision(*values), make_decision(*values))


@given(
    user=texts, roles=names, name=texts, action=st.sampled_from(["call", "list", "read"]),
    args=st.dictionaries(texts, st.integers(), max_size=3),
    when=st.none() | st.just(datetime(2026, 11, 28, tzinfo=UTC)), method=optional,
)  # fmt: skip
def test_make_request_is_the_constructor(
    user: str, roles: tuple[str, ...], name: str, action: str, args: dict[str, int],
    when: datetime | None, method: str | None,
) -> None:  # fmt: skip
    principal = Principal(user, roles)
    resource = Resource("tool", name)
    values = (principal, resource, action, args, when, method, {"transport": "stdio"})
    built, made = AccessRequest(*values), make_request(*values)
    assert type(made) is AccessRequest
    assert made == built
    assert repr(made) == repr(built)
    assert refusal(made, "action") is refusal(built, "action") is dataclasses.FrozenInstanceError
    assert refusal(made, "extra") is refusal(built, "extra") is not None
    assert dataclasses.replace(made, action=action) == built


def test_the_twins_have_the_classes_slots() -> None:
    """The swap needs the same layout: a field added to either class must reach its twin
    (it does, as the twin takes the class's slots), or building one fails loudly."""
    from guard.policy import model

    assert model._DecisionTwin.__slots__ == Decision.__slots__
    assert model._RequestTwin.__slots__ == AccessRequest.__slots__
    assert [f.name for f in dataclasses.fields(Decision)] == list(Decision.__slots__)
    assert [f.name for f in dataclasses.fields(AccessRequest)] == list(AccessRequest.__slots__)
