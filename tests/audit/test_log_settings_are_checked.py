"""AuditLog refuses, at construction and naming the parameter, a number that bounds
nothing: with `flush_interval` infinite (or over `threading.TIMEOUT_MAX`) the writer
thread died at its first wait and no record was ever written; with `max_queue` NaN the
queue never spilled (memory unbounded); a str failed at the comparison, unnamed."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from guard.audit import AuditLog

SIZES = ["batch_size", "max_queue", "segment_rows"]
TIMES = ["flush_interval", "segment_age"]


@pytest.mark.parametrize("option", SIZES + TIMES)
@pytest.mark.parametrize("value", [float("nan"), float("inf"), 0, -1])
def test_a_number_that_bounds_nothing_is_refused(tmp_path: Path, option: str, value: float) -> None:
    with pytest.raises((TypeError, ValueError), match=option):
        AuditLog(tmp_path / "s", **{option: value})


@pytest.mark.parametrize("option", SIZES + TIMES)
@pytest.mark.parametrize("value", ["10", None, True])
def test_a_number_that_is_not_one_is_refused(tmp_path: Path, option: str, value: object) -> None:
    with pytest.raises(TypeError, match=option):
        AuditLog(tmp_path / "s", **{option: value})


@pytest.mark.parametrize("option", SIZES)
def test_a_count_is_whole(tmp_path: Path, option: str) -> None:
    with pytest.raises(TypeError, match=option):
        AuditLog(tmp_path / "s", **{option: 10.5})


def test_a_flush_interval_no_thread_can_wait_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="flush_interval"):
        AuditLog(tmp_path / "s", flush_interval=threading.TIMEOUT_MAX * 2)
    # the longest one a thread can wait keeps the writer alive
    log = AuditLog(tmp_path / "s", flush_interval=threading.TIMEOUT_MAX)
    try:
        assert log._thread.is_alive()
    finally:
        log.close()


@pytest.mark.parametrize("interval", [1e-9, 1e-6, 0.0009])
def test_a_flush_interval_that_would_spin_the_writer_is_refused(
    tmp_path: Path, interval: float
) -> None:
    # 1e-9 s: the idle writer thread woke without end, about a third of a core doing nothing
    with pytest.raises(ValueError, match="flush_interval"):
        AuditLog(tmp_path / "s", flush_interval=interval)
    AuditLog(tmp_path / "s", flush_interval=0.001).close()  # a millisecond still works
