"""An EC public key without `algorithms=` verifies with the algorithm its curve implies
(found in review).

The docstring promises the default is "the one algorithm the key type implies", but every
EC key got ES256: a P-384 or P-521 key (common for ES384 / ES512 issuers) was refused at
construction, "algorithm ES256 does not fit a EC key", as if the key were wrong.
"""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from identity_kit import KeyPair, bearer, claims, mint

from guard.identity import JWTAuthenticator


@pytest.mark.parametrize(
    ("curve", "alg"),
    [(ec.SECP256R1(), "ES256"), (ec.SECP384R1(), "ES384"), (ec.SECP521R1(), "ES512")],
)
async def test_an_ec_key_defaults_to_its_curves_algorithm(
    curve: ec.EllipticCurve, alg: str
) -> None:
    pair = KeyPair(ec.generate_private_key(curve), alg, "ec")
    auth = JWTAuthenticator(public_key=pair.public_pem)
    assert auth.algorithms == {alg}
    token = mint(claims(), pair.private, alg)
    assert (await auth.authenticate(bearer(token))).user_id == "alice"
