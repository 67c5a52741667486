"""Clock conditions at the edges of the calendar: daylight-saving transitions, dates."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from guard import load_policies
from guard.errors import PolicyError
from guard.policy.conditions import Evaluation, compile_condition, validate_condition
from guard.policy.model import AccessRequest, Principal, Resource
from guard.policy.spec import Condition
from guard.policy.testing import load_suite


def check(cond: Condition, when: datetime) -> bool | None:
    request = AccessRequest(Principal("alice", ("user",)), Resource("tool", "t"), "call", time=when)
    return compile_condition(cond).evaluate(Evaluation(request))


def at(value: Any, op: str, zone: str) -> Condition:
    return Condition("request.time", op, value, timezone=zone)


# A naive instant in a zone is read at the offset in force before a transition (Python's
# fold=0): 02:30 on 2025-10-26 in Paris is the first 02:30 (00:30 UTC); 02:30 on 2025-03-30,
# an hour Paris skips, is 01:30 UTC. The clock must be compared as an instant with it, not
# as a wall-clock reading in the same zone (Python compares two datetimes sharing a tzinfo
# by their wall clocks, ignoring fold and gaps).
def utc(month: int, day: int, hour: int, minute: int) -> datetime:
    return datetime(2025, month, day, hour, minute, tzinfo=UTC)


PARIS, NEW_YORK = "Europe/Paris", "America/New_York"


@pytest.mark.parametrize(
    "cond,when,expected",
    [
        # fall back: 01:15 UTC is the second 02:15 in Paris, after the first 02:30
        (at("2025-10-26T02:30:00", "gt", PARIS), utc(10, 26, 1, 15), True),
        (at("2025-10-26T02:30:00", "lt", PARIS), utc(10, 26, 1, 15), False),
        (at("2025-10-26T02:30:00", "equals", PARIS), utc(10, 26, 1, 30), False),
        (at("2025-10-26T02:30:00", "equals", PARIS), utc(10, 26, 0, 30), True),
        # spring forward: 01:10 UTC (03:10 in Paris) is before the skipped 02:30 (01:30 UTC)
        (at("2025-03-30T02:30:00", "lt", PARIS), utc(3, 30, 1, 10), True),
        (at("2025-03-30T02:30:00", "gte", PARIS), utc(3, 30, 1, 10), False),
        (
            at(["2025-03-30T02:00:00", "2025-03-30T02:59:00"], "between", PARIS),
            utc(3, 30, 1, 30),
            True,
        ),
        # New York: 01:30 on 2025-11-02 is the first, EDT (05:30 UTC); 06:10 UTC the second 01:10
        (at("2025-11-02T01:30:00", "gt", NEW_YORK), utc(11, 2, 6, 10), True),
        (at("2025-03-09T02:30:00", "lt", NEW_YORK), utc(3, 9, 7, 10), True),
        # the caller's clock in that zone, second occurrence (fold=1), is the same instant
        (
            at("2025-10-26T02:30:00", "gt", PARIS),
            datetime(2025, 10, 26, 2, 15, fold=1, tzinfo=ZoneInfo(PARIS)),
            True,
        ),
    ],
)
def test_instants_compare_as_instants_across_daylight_saving(
    cond: Condition, when: datetime, expected: bool
) -> None:
    assert check(cond, when) is expected


@pytest.mark.parametrize("value", ["2025-1-5", "yesterday", "2025-02-30", 20250105, "05/01/2025"])
@pytest.mark.parametrize("op", ["gt", "lte", "equals", "in", "between"])
def test_a_date_compared_must_be_an_iso_date(op: str, value: Any) -> None:
    # as text, "2025-1-5" would order after "2025-01-06" and equal no date ever
    value = [value, "2026-01-01"] if op in ("in", "between") else value
    problems = validate_condition(Condition("request.time.date", op, value))
    assert problems and "ISO date" in " ".join(problems), problems


def test_dates_compare_as_dates_whatever_iso_form_they_take() -> None:
    jan9 = datetime(2025, 1, 9, 12, tzinfo=UTC)
    assert check(Condition("request.time.date", "gt", "20250105"), jan9) is True
    assert check(Condition("request.time.date", "equals", "20250109"), jan9) is True
    # text operators still see the field's text
    assert check(Condition("request.time.date", "starts_with", "2025-01"), jan9) is True


@pytest.mark.parametrize("zone", ["Europe", "Etc", "America"])
def test_a_folder_of_zones_is_an_unknown_timezone(zone: str) -> None:
    # ZoneInfo raised IsADirectoryError, which the loader reported as "could not be
    # checked" with the path of the zone database, and compile_condition let out raw
    problems = validate_condition(Condition("request.time.hour", "gt", 9, timezone=zone))
    assert problems == [f"request.time.hour gt: unknown timezone {zone!r}"]
    with pytest.raises(PolicyError, match="unknown timezone"):
        compile_condition(Condition("request.time.hour", "gt", 9, timezone=zone))
    with pytest.raises(PolicyError) as err:
        load_policies(
            {
                "name": "p",
                "rules": [
                    {
                        "name": "r",
                        "effect": "allow",
                        "conditions": [
                            {
                                "field": "request.time.hour",
                                "operator": "gt",
                                "value": 9,
                                "timezone": zone,
                            }
                        ],
                    }
                ],
            }
        )
    assert [p.code for p in err.value.problems] == ["bad_value"]
    assert "unknown timezone" in str(err.value) and "zoneinfo" not in str(err.value)


@pytest.mark.parametrize(
    "value", ["!!timestamp 'garbage'", "!!timestamp '2025-1-1x'", "!!bool 'x'"]
)
def test_a_scalar_tag_on_text_it_cannot_read_is_a_policy_error(value: str) -> None:
    # PyYAML's constructors raised AttributeError and KeyError out of load_policies
    text = (
        "name: p\nrules:\n  - name: r\n    effect: allow\n    conditions:\n"
        f"      - {{field: request.time, operator: gt, value: {value}}}\n"
    )
    with pytest.raises(PolicyError) as err:
        load_policies(text)
    assert err.value.problems[0].code == "yaml_syntax"
    assert err.value.problems[0].line == 6


def test_an_instant_at_an_offset_of_seconds_replays_from_its_text() -> None:
    # Paris before 1911 was 9 min 21 s ahead of UTC: YAML writes that offset as
    # +00:09:21, which no YAML timestamp carries, so the stored text did not load back
    paris_1900 = datetime(1900, 1, 1, 12, tzinfo=ZoneInfo(PARIS))
    cond = {"field": "request.time", "operator": "gt", "value": paris_1900}
    policies = load_policies(
        {"name": "p", "rules": [{"name": "r", "effect": "allow", "conditions": [cond]}]}
    )
    again = load_policies([spec.text for spec in policies.policies])
    assert again.hash == policies.hash
    for seconds in (-1, 0, 1):
        when = paris_1900 + timedelta(seconds=seconds)
        assert check(again.policies[0].rules[0].conditions[0], when) is (seconds > 0)


@pytest.mark.parametrize(
    "time,line",
    [("2025-02-30", 4), ("!!timestamp 'nope'", 4), ("2025-06-02T25:00:00Z", 4), ("{}", None)],
)
def test_a_suite_time_that_is_no_date_is_a_policy_error(
    tmp_path: Path, time: str, line: int | None
) -> None:
    # a date YAML reads as one but the calendar refuses (February 30th) raised ValueError
    # out of `mcp-guard test`, with a traceback
    suite = tmp_path / "suite.yaml"
    suite.write_text(
        "policies:\n  - name: p\n    rules: [{name: r, effect: allow}]\n"
        f"time: {time}\ncases:\n  - {{name: a, tool: x, allowed: true}}\n"
    )
    with pytest.raises(PolicyError) as err:
        load_suite(suite)
    assert err.value.problems[0].code in ("yaml_syntax", "bad_value")
    if line is not None:
        assert err.value.problems[0].line == line
