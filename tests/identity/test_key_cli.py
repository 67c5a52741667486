"""`mcp-guard key new|hash`: the printed entry configures an authenticator that accepts the key."""

from __future__ import annotations

import asyncio
from pathlib import Path

import yaml
from click.testing import CliRunner
from identity_kit import http, remember

from guard.identity import ApiKeyAuthenticator, fingerprint
from guard.identity.cli import COMMANDS, key


def test_new_key_entry_accepts_the_key(tmp_path: Path) -> None:
    result = CliRunner().invoke(key, ["new", "--user", "ci", "--role", "deployer"])
    assert result.exit_code == 0, result.output
    value = remember(result.stderr.split(": ", 1)[1].strip())
    assert value.startswith("mcpg_") and len(value) > 40
    assert value not in result.stdout  # the config entry holds the digest only
    path = tmp_path / "api-keys.yaml"
    path.write_text(result.stdout)
    (digest,) = yaml.safe_load(path.read_text())
    assert digest.startswith("sha256:")
    auth = ApiKeyAuthenticator(file=path)
    p = asyncio.run(auth.authenticate(http({"x-api-key": value})))
    assert (p.user_id, p.roles, p.key_id) == ("ci", ("deployer",), fingerprint(value))
    assert f"# key_id {p.key_id}" in result.stdout


def test_hash_reads_the_key_from_stdin() -> None:
    secret = remember("existing-key-0000042")
    result = CliRunner().invoke(key, ["hash", "--role", "user"], input=secret + "\n")
    assert result.exit_code == 0, result.output
    assert secret not in result.output
    entry = yaml.safe_load(result.stdout)
    (spec,) = entry.values()
    assert spec == {"roles": ["user"]}
    assert fingerprint(secret) in result.stdout


def test_hash_without_input_is_a_usage_error() -> None:
    from guard.cli import main

    result = CliRunner().invoke(main, ["key", "hash"], input="")
    assert result.exit_code == 1 and "no key" in result.output  # 2 is explain's "denied"


def test_commands_are_exported() -> None:
    assert [c.name for c in COMMANDS] == ["key"]
