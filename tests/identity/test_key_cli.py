"""`mcp-guard key new|hash`: the printed entry configures an authenticator that accepts the key."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
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


def test_key_ids_match_an_authenticator_with_a_key_id_secret(
    tmp_path: Path, monkeypatch: Any
) -> None:
    """With `key_id_secret` the records' `key_id` is an HMAC: the commands printed the
    plain fingerprint, which matched no record. The secret comes from the environment,
    never the command line (shell history, process listings)."""
    monkeypatch.setenv("KEY_ID_SECRET", "hmac-secret-for-key-ids-0001")
    made = CliRunner().invoke(key, ["new", "--key-id-secret-env", "KEY_ID_SECRET"])
    assert made.exit_code == 0, made.output
    value = remember(made.stderr.split(": ", 1)[1].strip())
    path = tmp_path / "api-keys.yaml"
    path.write_text(made.stdout)
    auth = ApiKeyAuthenticator(file=path, key_id_secret="hmac-secret-for-key-ids-0001")
    p = asyncio.run(auth.authenticate(http({"x-api-key": value})))
    assert f"# key_id {p.key_id}" in made.stdout
    hashed = CliRunner().invoke(key, ["hash", "--key-id-secret-env", "KEY_ID_SECRET"], input=value)
    assert f"# key_id {p.key_id}" in hashed.stdout
    assert "hmac-secret" not in made.output + hashed.output
    missing = CliRunner().invoke(key, ["new", "--key-id-secret-env", "NOT_SET_ANYWHERE"])
    assert missing.exit_code != 0 and "NOT_SET_ANYWHERE" in missing.output


@pytest.mark.parametrize("prefix", ["two words", "new\nline", "x" * 100, ""])
def test_a_prefix_no_header_can_carry_is_refused(prefix: str) -> None:
    result = CliRunner().invoke(key, ["new", "--prefix", prefix])
    assert result.exit_code != 0 and "--prefix" in result.output
