"""StdioAuthenticator refuses lists given as one string: `transports="stdio"` was the set
of its letters, so the launcher's user was refused on the very transport named."""

from __future__ import annotations

import pytest

from guard.identity import RequestInfo, StdioAuthenticator


@pytest.mark.parametrize("transports", ["stdio", b"stdio", [1], ()])
def test_transports_that_name_no_transport_are_refused(transports: object) -> None:
    with pytest.raises((TypeError, ValueError), match="transports"):
        StdioAuthenticator("dev", transports=transports)  # type: ignore[arg-type]


@pytest.mark.parametrize("roles", ["admin", [1, 2], [None]])
def test_roles_that_are_not_a_list_of_strings_are_refused(roles: object) -> None:
    with pytest.raises(TypeError, match="roles"):
        StdioAuthenticator("dev", roles=roles)  # type: ignore[arg-type]


async def test_a_list_of_transports_still_works() -> None:
    auth = StdioAuthenticator("dev", ["developer"], transports=["stdio"])
    assert (await auth.authenticate(RequestInfo(transport="stdio"))).roles == ("developer",)
