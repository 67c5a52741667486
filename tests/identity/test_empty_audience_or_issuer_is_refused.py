"""An empty `audience` or `issuer` (often an unset environment variable) is refused at
construction, naming it: `audience=""` or `[]` refused every token at the first request
("missing the aud claim"), `issuer=[]` refused every token, and `issuer=""` accepted only
tokens whose `iss` is empty."""

from __future__ import annotations

import pytest
from identity_kit import HS_SECRET

from guard import create_jwt_middleware
from guard.identity import JWTAuthenticator


@pytest.mark.parametrize("option", ["audience", "issuer"])
@pytest.mark.parametrize("value", ["", "  ", [], [""], ()])
def test_an_empty_audience_or_issuer_is_refused(option: str, value: object) -> None:
    with pytest.raises(ValueError, match=option):
        JWTAuthenticator(HS_SECRET, **{option: value})
    with pytest.raises(ValueError, match=option):
        create_jwt_middleware(HS_SECRET, {"name": "p"}, **{f"jwt_{option}": value}, audit=None)


def test_audience_and_issuer_lists_still_work() -> None:
    JWTAuthenticator(HS_SECRET, audience=["mcp", "api"], issuer=("https://idp.test",))
