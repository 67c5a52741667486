"""`mcp-guard key`: make API keys and the digests configuration should hold instead.

A key is shown once, when it is made; configuration files keep only its `sha256:` digest,
and records only its `key_id`. `hash` reads the key from standard input (or a hidden
prompt), so it never lands in shell history or a process listing.
"""

from __future__ import annotations

import secrets
import sys

import click
import yaml

from guard.identity._common import fingerprint
from guard.identity.api_key import hash_api_key

__all__ = ["COMMANDS", "key"]


def _entry(key_value: str, user: str | None, roles: tuple[str, ...]) -> str:
    spec: dict[str, object] = {}
    if user:
        spec["user_id"] = user
    spec["roles"] = list(roles) or ["api_user"]
    return yaml.safe_dump({hash_api_key(key_value): spec}, sort_keys=False).rstrip()


@click.group()
def key() -> None:
    """Make API keys and their digests (for `ApiKeyAuthenticator` files)."""


@key.command("new")
@click.option("--user", help="user id the key stands for (default: api-key:<key_id>)")
@click.option("--role", "roles", multiple=True, help="role granted (repeatable; default: api_user)")
@click.option("--prefix", default="mcpg", show_default=True, help="readable key prefix")
def new_key(user: str | None, roles: tuple[str, ...], prefix: str) -> None:
    """Make a random key: prints it once (stderr), and its config entry (stdout).

    \b
    Example:
        mcp-guard key new --user ci --role deployer >> api-keys.yaml
    """
    value = f"{prefix}_{secrets.token_urlsafe(32)}"
    click.echo(f"key (shown once, give it to the caller): {value}", err=True)
    click.echo(f"# key_id {fingerprint(value)}")
    click.echo(_entry(value, user, roles))


@key.command("hash")
@click.option("--user", help="user id the key stands for (default: api-key:<key_id>)")
@click.option("--role", "roles", multiple=True, help="role granted (repeatable; default: api_user)")
def hash_key(user: str | None, roles: tuple[str, ...]) -> None:
    """Print the config entry (digest) and key_id of an existing key read from stdin.

    \b
    Example:
        printf %s "$KEY" | mcp-guard key hash --user ci --role deployer
    """
    if sys.stdin.isatty():
        value = click.prompt("API key", hide_input=True)
    else:
        value = sys.stdin.read().strip()
    if not value:
        raise click.UsageError("no key on standard input")
    click.echo(f"# key_id {fingerprint(value)}")
    click.echo(_entry(value, user, roles))


COMMANDS = [key]
