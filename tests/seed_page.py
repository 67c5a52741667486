"""The policy shown on mcp-auth-guard's page, kept in one place: `examples/policies/seed.yaml`
(a leading comment, then the page's text unchanged). Tests import it from here."""

from __future__ import annotations

from pathlib import Path

SEED_POLICY_FILE = Path(__file__).resolve().parent.parent / "examples" / "policies" / "seed.yaml"
# the page's text: the file without its leading comment lines
SEED_POLICY = "".join(
    line
    for line in SEED_POLICY_FILE.read_text().splitlines(keepends=True)
    if not line.startswith("#")
)
