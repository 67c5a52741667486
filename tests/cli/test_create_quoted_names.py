"""Review findings: `mcp-guard create`."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from guard.cli import main


@pytest.mark.parametrize("name", ["2024", "1.0", "true", "on", "null"])
def test_a_name_yaml_reads_as_a_number_or_boolean(name: str) -> None:
    """The name passes create's own check ([A-Za-z0-9_.-]+) but is pasted into the
    template unquoted; YAML reads it as a number/boolean/null and `create` dies with a
    PolicyError traceback (or should quote it and succeed)."""
    result = CliRunner().invoke(main, ["create", name, "-o", "-"])
    assert not (result.exception and not isinstance(result.exception, SystemExit)), (
        f"traceback: {result.exception!r}"
    )
    assert result.exit_code == 0
    assert f"name: '{name}'" in result.stdout
