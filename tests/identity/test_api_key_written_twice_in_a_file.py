"""An API key written twice in a key file or variable is refused at load, not mapped to
whichever identity YAML keeps (found in review).

`ApiKeyAuthenticator` refuses "the same API key configured twice", but read its file and
variable with `yaml.safe_load`, which keeps the last of a repeated mapping key silently (JSON
text too: YAML reads it). So a file mapping one key first to a user and then to an admin
loaded without a word and let that key in as the admin: which identity a key stands for was
left to the order of lines nobody was told about. The refusal names the line, never the key.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from identity_kit import remember

from guard.identity import ApiKeyAuthenticator

KEY = remember("team-key-written-twice-0001")

TWICE = {
    "yaml": f"{KEY}: {{user_id: alice, roles: [user]}}\n{KEY}: {{user_id: root, roles: [admin]}}\n",
    "json": f'{{"{KEY}": ["user"], "{KEY}": ["admin"]}}',
    "wrapped": f"keys:\n  {KEY}: [user]\n  {KEY}: [admin]\n",
    "field": f"{KEY}:\n  user_id: alice\n  roles: [user]\n  user_id: root\n",
}


@pytest.mark.parametrize("text", TWICE.values(), ids=TWICE.keys())
def test_a_key_written_twice_in_a_file_is_refused(text: str, tmp_path: Path) -> None:
    keys = tmp_path / "keys.yaml"
    keys.write_text(text)
    with pytest.raises(ValueError, match="twice") as refused:
        ApiKeyAuthenticator(file=keys)
    assert KEY not in str(refused.value)


@pytest.mark.parametrize("text", TWICE.values(), ids=TWICE.keys())
def test_a_key_written_twice_in_a_variable_is_refused(
    text: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GUARD_TEST_KEYS", text)
    with pytest.raises(ValueError, match="twice") as refused:
        ApiKeyAuthenticator(env="GUARD_TEST_KEYS")
    assert KEY not in str(refused.value)


def test_a_yaml_merge_may_still_override_a_key(tmp_path: Path) -> None:
    """A `<<` merge brings keys in that the mapping may override: that is not a repeat."""
    keys = tmp_path / "keys.yaml"
    keys.write_text(
        f"base-key-0001: &base {{user_id: alice, roles: [user]}}\n"
        f"{KEY}: {{<<: *base, roles: [ops]}}\n"
    )
    auth = ApiKeyAuthenticator(file=keys)
    assert len(auth.key_ids) == 2
