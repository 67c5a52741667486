"""`mcp-guard convert -o` does not overwrite a file unasked."""

from __future__ import annotations

import shutil
from pathlib import Path

from click.testing import CliRunner

from guard.cli import main

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "policies"


def test_convert_refuses_to_overwrite_without_force(tmp_path: Path) -> None:
    """`convert other.json --to yaml -o weather.yaml` replaced a hand-written, commented
    policy without a word, where `create` refuses an existing file and `format --write`
    a commented one unless `--force` is given."""
    policy = tmp_path / "weather.yaml"
    shutil.copy(EXAMPLES / "weather.yaml", policy)
    original = policy.read_text()
    as_json = tmp_path / "seed.json"
    runner = CliRunner()
    assert runner.invoke(main, ["convert", str(EXAMPLES / "seed.yaml"), "--to", "json",
                                "-o", str(as_json)]).exit_code == 0  # fmt: skip
    refused = runner.invoke(main, ["convert", str(as_json), "--to", "yaml", "-o", str(policy)])
    assert refused.exit_code == 1
    assert "exists; use --force" in refused.output
    assert policy.read_text() == original
    forced = runner.invoke(
        main, ["convert", str(as_json), "--to", "yaml", "-o", str(policy), "--force"]
    )
    assert forced.exit_code == 0, forced.output
    assert "my_service_policy" in policy.read_text()
