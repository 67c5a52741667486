"""mcp-auth-guard 1.0.0 policy files MCP Guard refused for reasons the README did not list
(found in review): a number as the value of `starts_with` / `ends_with` / `regex` (1.0.0
compares its text) and `priority: "5.0"` now load; `priority: true` stays a load error, as
the differences table says."""

from __future__ import annotations

from pathlib import Path

import mcp_auth_guard.policy as seed_policy
import pytest

from guard.policy import load_policies

HEAD = "name: p\nrules:\n  - name: r\n    effect: allow\n"
FILES = {
    "starts_with_number": HEAD
    + "    conditions: [{field: tool.args.zip, operator: starts_with, value: 75}]\n",
    "ends_with_number": HEAD
    + "    conditions: [{field: tool.args.v, operator: ends_with, value: 1.5}]\n",
    "regex_number": HEAD
    + "    conditions: [{field: tool.args.code, operator: regex, value: 42}]\n",
    "priority_text_float": HEAD + "    priority: '5.0'\n",
}


@pytest.mark.parametrize("case", sorted(FILES))
def test_seed_file_loads(case: str, tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    path.write_text(FILES[case])
    seed_policy.PolicyLoader.load_from_file(path)  # 1.0.0 loads it
    load_policies(path)


def test_a_boolean_priority_is_a_load_error_as_documented(tmp_path: Path) -> None:
    from guard.errors import PolicyError

    path = tmp_path / "p.yaml"
    path.write_text(HEAD + "    priority: true\n")
    seed_policy.PolicyLoader.load_from_file(path)  # 1.0.0 read it as 1
    with pytest.raises(PolicyError, match="priority"):
        load_policies(path)
    readme = Path(__file__).resolve().parents[2].joinpath("README.md").read_text()
    assert "| `priority: true` | read as 1 | load error" in readme
