"""`mcp-guard key`: make API keys and the digests configuration should hold instead.

A key is shown once, when it is made; configuration files keep only its `sha256:` digest,
and records only its `key_id`. `hash` reads the key from standard input (or a hidden
prompt), so it never lands in shell history or a process listing.
"""

from __future__ import annotations

import os
import re
import secrets
import sys

import click
import yaml

from guard.identity._common import fingerprint, header_text
from guard.identity.api_key import hash_api_key

__all__ = ["COMMANDS", "key"]


def _entry(key_value: str, user: str | None, roles: tuple[str, ...]) -> str:
    spec: dict[str, object] = {}
    if user:
        spec["user_id"] = user
    spec["roles"] = list(roles) or ["api_user"]
    return yaml.safe_dump({hash_api_key(key_value): spec}, sort_keys=False).rstrip()


_PREFIX = re.compile(r"[A-Za-z0-9_-]{1,32}")


def _check_prefix(_ctx: click.Context, _param: click.Parameter, prefix: str) -> str:
    if not _PREFIX.fullmatch(prefix):
        # a header value carries no space or newline, and the server reads at most 1 KB
        raise click.BadParameter("1 to 32 letters, digits, '_' or '-'", param_hint="--prefix")
    return prefix


def _secret(name: str | None) -> bytes | None:
    """The `key_id_secret` held by environment variable `name` (None: no secret)."""
    if name is None:
        return None
    value = os.environ.get(name)
    if not value:
        raise click.UsageError(f"environment variable {name} holds no key_id secret")
    return value.encode()


_SECRET_ENV = click.option(
    "--key-id-secret-env",
    "secret_env",
    metavar="NAME",
    help="environment variable holding the authenticator's key_id_secret, so the key_id "
    "printed is the one records carry (never pass the secret itself as an argument)",
)


@click.group()
def key() -> None:
    """Make API keys and their digests (for `ApiKeyAuthenticator` files)."""


@key.command("new")
@click.option("--user", help="user id the key stands for (default: api-key:<key_id>)")
@click.option("--role", "roles", multiple=True, help="role granted (repeatable; default: api_user)")
@click.option(
    "--prefix", default="mcpg", show_default=True, callback=_check_prefix,
    help="readable key prefix (letters, digits, '_', '-')",
)  # fmt: skip
@_SECRET_ENV
def new_key(user: str | None, roles: tuple[str, ...], prefix: str, secret_env: str | None) -> None:
    """Make a random key: prints it once (stderr), and its config entry (stdout).

    \b
    Example:
        mcp-guard key new --user ci --role deployer >> api-keys.yaml
    """
    secret = _secret(secret_env)
    value = f"{prefix}_{secrets.token_urlsafe(32)}"
    click.echo(f"key (shown once, give it to the caller): {value}", err=True)
    click.echo(f"# key_id {fingerprint(value, secret)}")
    click.echo(_entry(value, user, roles))


@key.command("hash")
@click.option("--user", help="user id the key stands for (default: api-key:<key_id>)")
@click.option("--role", "roles", multiple=True, help="role granted (repeatable; default: api_user)")
@_SECRET_ENV
def hash_key(user: str | None, roles: tuple[str, ...], secret_env: str | None) -> None:
    """Print the config entry (digest) and key_id of an existing key read from stdin.

    \b
    Example:
        printf %s "$KEY" | mcp-guard key hash --user ci --role deployer
    """
    secret = _secret(secret_env)
    if sys.stdin.isatty():
        value = click.prompt("API key", hide_input=True)
    else:
        value = sys.stdin.read().strip()
    if not value:
        raise click.UsageError("no key on standard input")
    if not header_text(value):
        raise click.UsageError("the key must be printable ASCII: no header carries it reliably")
    click.echo(f"# key_id {fingerprint(value, secret)}")
    click.echo(_entry(value, user, roles))


COMMANDS = [key]
