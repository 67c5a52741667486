"""Numeric telemetry settings are checked by name. Found in review: `GuardMetrics(
max_resources=float("inf"))` took the bound on resource label values away (unbounded
metric cardinality, which the setting exists to prevent), and `configure(sample_ratio=
"0.5")` failed with Python's own comparison error, naming no setting, while
`sample_ratio=True` sampled every trace."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry

from guard.telemetry import configure
from guard.telemetry.metrics import GuardMetrics


@pytest.mark.parametrize("value", [float("inf"), 2.5, True, "500"])
def test_max_resources_is_a_whole_number(value: object) -> None:
    with pytest.raises(TypeError, match="max_resources"):
        GuardMetrics(CollectorRegistry(), max_resources=value)  # type: ignore[arg-type]


@pytest.mark.parametrize("value", ["0.5", True, None])
def test_sample_ratio_is_a_number(value: object) -> None:
    with pytest.raises(TypeError, match="sample_ratio"):
        configure(service_name="svc", sample_ratio=value, set_global=False)  # type: ignore[arg-type]


@pytest.mark.parametrize("value", [float("nan"), -0.1, 1.5])
def test_sample_ratio_is_within_zero_and_one(value: float) -> None:
    with pytest.raises(ValueError, match="sample_ratio"):
        configure(service_name="svc", sample_ratio=value, set_global=False)
