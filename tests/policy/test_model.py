"""`AccessRequest` and `Decision` are built as a twin of theirs and then become themselves
(`guard.policy.model`): what comes out is an ordinary frozen dataclass instance, with every
field where its argument put it."""

from __future__ import annotations

import dataclasses
import pickle
from datetime import UTC, datetime
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from guard.policy.model import AccessRequest, Decision, Principal, Resource

texts = st.text(max_size=8)
optional = st.none() | texts
names = st.tuples(texts, texts).map(lambda t: tuple(t))


def refusal(obj: Any, name: str) -> type[Exception] | None:
    """What writing attribute `name` of `obj` raises."""
    try:
        setattr(obj, name, None)
    except Exception as exc:
        return type(exc)
    return None


def ordinary(made: Any, cls: type, values: tuple[Any, ...]) -> None:
    assert type(made) is cls
    assert tuple(getattr(made, f.name) for f in dataclasses.fields(cls)) == values
    assert made == cls(*values)
    assert repr(made).startswith(f"{cls.__name__}(")
    for f in dataclasses.fields(cls):  # frozen, field by field, and slots only
        assert refusal(made, f.name) is dataclasses.FrozenInstanceError
    assert refusal(made, "extra") is not None
    first = dataclasses.fields(cls)[0].name
    assert dataclasses.replace(made, **{first: values[0]}) == made


@given(
    allowed=st.booleans(), reason=texts, rule=optional, policy=optional, matched=names,
    errors=names, policy_hash=texts, rules=st.integers(0, 99),
    eval_us=st.floats(allow_nan=False), message=texts,
)  # fmt: skip
def test_a_decision_is_an_ordinary_frozen_one(
    allowed: bool, reason: str, rule: str | None, policy: str | None, matched: tuple[str, ...],
    errors: tuple[str, ...], policy_hash: str, rules: int, eval_us: float, message: str,
) -> None:  # fmt: skip
    values = (allowed, reason, rule, policy, matched, errors, policy_hash, rules, eval_us, message)
    made = Decision(*values)
    ordinary(made, Decision, values)
    assert hash(made) == hash(values)
    assert pickle.loads(pickle.dumps(made)) == made


@given(
    user=texts, roles=names, name=texts, action=st.sampled_from(["call", "list", "read"]),
    args=st.dictionaries(texts, st.integers(), max_size=3),
    when=st.none() | st.just(datetime(2026, 11, 28, tzinfo=UTC)), method=optional,
)  # fmt: skip
def test_an_access_request_is_an_ordinary_frozen_one(
    user: str, roles: tuple[str, ...], name: str, action: str, args: dict[str, int],
    when: datetime | None, method: str | None,
) -> None:  # fmt: skip
    values = (Principal(user, roles), Resource("tool", name), action, args, when, method,
              {"transport": "stdio"})  # fmt: skip
    ordinary(AccessRequest(*values), AccessRequest, values)


def test_defaults_and_keywords() -> None:
    d = Decision(allowed=False, reason="default", errors=("e",))
    assert dataclasses.astuple(d) == (False, "default", None, None, (), ("e",), "", 0, 0.0, "")
    r = AccessRequest(Principal("a"), Resource("tool", "t"), "call")
    assert (r.args, r.time, r.method, r.context) == ({}, None, None, {})


def test_the_twins_have_the_classes_slots() -> None:
    """The twin must have its class's layout: a field added to either class reaches its
    twin (it takes the class's slots), in field order."""
    from guard.policy import model

    for cls, twin in ((Decision, model._DecisionTwin), (AccessRequest, model._RequestTwin)):
        assert twin.__slots__ == cls.__slots__
        assert [f.name for f in dataclasses.fields(cls)] == list(cls.__slots__)
