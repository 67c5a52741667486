"""Two dashboard panels count what their titles (and the README) say they don't.

- "Guard errors (fail-closed denials)" sums every `where`, including `telemetry`, `shadow`
  and `outcome`, which README says "deny nothing" (the MCPGuardErrors alert excludes
  them). With an OTLP exporter down, every request adds a `telemetry` error: the panel
  shows a flood of denials that never happened.
- "Top denying rules" counts list filtering, which every other deny panel and the
  deny-rate alert exclude ("hiding tools is normal"): a `tools/list` hiding 50 tools adds
  50 default denials, so the panel's top entries are listing noise (`rule=""`), not the
  rules that refused calls."""

from __future__ import annotations

from opsfiles import dashboard_exprs

_NOT_DENIALS = ("telemetry", "shadow", "outcome")


def _exprs(title_part: str) -> list[str]:
    found = [e for t, e in dashboard_exprs() if title_part in t]
    assert found, title_part
    return found


def test_the_fail_closed_denials_panel_leaves_out_errors_that_deny_nothing() -> None:
    for expr in _exprs("fail-closed denials"):
        assert "where!~" in expr and all(w in expr for w in _NOT_DENIALS), expr


def test_top_denying_rules_leaves_out_list_filtering() -> None:
    for expr in _exprs("Top denying rules"):
        assert 'action!="list"' in expr, expr
