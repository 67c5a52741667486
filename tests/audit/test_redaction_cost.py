"""What redaction costs on a hostile caller's arguments: it runs on the request path,
inside `AuditLog.append`, so its work must grow no faster than the arguments do."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
from audit_kit import event

from guard.audit import AuditLog, open_store
from guard.audit.redact import MAX_PATH_CHARS, TOO_BIG_MARK, Redactor, _words


def test_a_long_key_is_judged_in_linear_time() -> None:
    """Found in review: a key's every tail after a `_` was copied to be looked up, so a
    200 KB key `a_a_a_...` took 2 s on the event loop (a 4 MiB one, under the MCP SDK's
    body limit, about twelve minutes). A bound far above linear time against the linear
    work judging it needs anyway (its words), measured here."""
    key = "a_" * 100_000
    redactor = Redactor()
    t0 = time.perf_counter()
    _words(key)
    baseline = time.perf_counter() - t0
    t0 = time.perf_counter()
    assert redactor.redact({key: 1}) == ({key: 1}, ())
    assert time.perf_counter() - t0 < 50 * baseline + 0.1
    # a long name still ends with the words of a sensitive one
    long = "a_" * 100_000 + "db_password"
    assert redactor.redact({long: "x"}) == ({long: "<redacted:path>"}, (long,))
    assert redactor.sensitive("x_" * 1000 + "XAuthToken")
    assert not redactor.sensitive("x_" * 1000 + "max_tokens")


def _under_long_keys(levels: int, key_chars: int, leaves: dict[str, object]) -> dict[str, object]:
    value: dict[str, object] = leaves
    for level in range(levels):
        value = {f"{level:04d}".ljust(key_chars, "k"): value}
    return value


def test_paths_below_long_keys_are_bounded() -> None:
    """Found in review: each redacted value's path spells out every key above it, so 1,500
    sensitive keys under 60 levels of 1,300-character keys (a 100 KB request) listed
    117 MB of paths (a 1 MB request, gigabytes: the server ran out of memory; the row,
    over the readers' 256 MiB limit, stopped every conversion of the store). Past
    `MAX_PATH_CHARS` of paths, every argument is recorded as a marker instead."""
    leaves = {f"k{i}_token": "x" for i in range(1_500)}
    args = {"city": "Paris", "doc": _under_long_keys(60, 1_300, leaves)}
    clean, redacted = Redactor().redact(args)
    assert sum(map(len, redacted)) <= MAX_PATH_CHARS
    assert clean == {"city": TOO_BIG_MARK, "doc": TOO_BIG_MARK}
    assert redacted == ("city", "doc")
    json.dumps(clean)


def test_paths_built_and_not_listed_count_too() -> None:
    # long values under long keys are not listed, but each one's path was built (and
    # matched against dotted patterns): the same quadratic work, without the memory
    leaves = {f"k{i}": "a value of twenty chars" for i in range(2_000)}
    args = {"doc": _under_long_keys(60, 1_300, leaves)}
    assert Redactor(paths=["*.pin"]).redact(args) == ({"doc": TOO_BIG_MARK}, ("doc",))


def test_ordinary_big_arguments_keep_their_paths() -> None:
    rows = [{"id": f"row-{i:010d}-abcdef", "api_key": "k"} for i in range(20_000)]
    clean, redacted = Redactor().redact({"rows": rows})
    assert len(redacted) == 20_000 and redacted[0] == "rows.0.api_key"
    assert clean is not None and clean["rows"][1]["api_key"] == "<redacted:path>"


def test_a_record_with_too_many_paths_is_written_and_readable(tmp_path: Path) -> None:
    leaves = {f"k{i}_token": "x" for i in range(1_500)}
    log = AuditLog(tmp_path / "store")
    log.append(event(1, args={"doc": _under_long_keys(60, 1_300, leaves)}))
    log.close()
    with open_store(tmp_path / "store") as store:
        [(args, paths)] = store.execute("SELECT args, args_redacted FROM decisions").fetchall()
    assert json.loads(args) == {"doc": TOO_BIG_MARK} and paths == ["doc"]


def test_short_items_of_a_list_are_passed_over_as_short_values_are(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Found in review: each item of a list was checked as a value under a name of its
    own (its index: a path built, the name judged), 2 µs an item: a 4 MiB request of
    `[1,1,...]` held the event loop for 4 s. Short scalars of a list take the fast path a
    mapping's short scalars take."""
    checked = 0
    check = Redactor._check

    def counting(self: Redactor, *args: Any) -> Any:
        nonlocal checked
        checked += 1
        return check(self, *args)

    monkeypatch.setattr(Redactor, "_check", counting)
    items = [1, 2.5, True, None, "short", *range(100_000)]
    args = {"items": items}
    assert Redactor().redact(args) == (args, ())
    assert checked == 1  # the list itself
    # what may need redacting is still checked
    tricky = ["sk-live-0123456789abcdef", 10**4000, {"password": "x"}, ["é" * 3], "ok"]
    clean, redacted = Redactor().redact({"items": tricky})
    assert redacted == ("items.0", "items.1", "items.2.password")
    assert clean is not None and clean["items"][3:] == [["é" * 3], "ok"]
    # an index a configured name or pattern covers is still redacted
    assert Redactor(paths=["0"]).redact({"x": ["a", "b"]}) == (
        {"x": ["<redacted:path>", "b"]},
        ("x.0",),
    )
    assert Redactor(paths=["x.1"]).redact({"x": ["a", "b"]}) == (
        {"x": ["a", "<redacted:path>"]},
        ("x.1",),
    )
