"""Identity test fixtures, and the suite-wide secret scan.

A logging handler installed for the whole session (not just this folder) keeps what every
logger emits; at session end `pytest_sessionfinish` fails the run if any credential a test
minted (`identity_kit.remember`), or anything shaped like a JWT, appears in a log line.
`test_no_secrets_in_logs.py` runs the same scan over what was captured up to that point,
so a leak also shows up as a named failing test.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest
from identity_kit import KEEPER, JWKSServer, KeyPair, ec_pair, ed_pair, leaks, masked, rsa_pair


def pytest_configure(config: pytest.Config) -> None:
    root = logging.getLogger()
    if KEEPER not in root.handlers:
        root.addHandler(KEEPER)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    logging.getLogger().removeHandler(KEEPER)
    found = leaks(KEEPER.lines)
    if found:
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:
            reporter.write_line(f"SECRET SCAN: {len(found)} log line(s) carry a credential:")
            for line in found[:5]:
                reporter.write_line("  " + masked(line)[:160])
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


@pytest.fixture(autouse=True)
def _guard_debug_logs(caplog: pytest.LogCaptureFixture) -> None:
    """Identity tests run with the guard's own loggers at DEBUG, so debug lines are scanned."""
    caplog.set_level(logging.DEBUG, logger="guard")


@pytest.fixture(scope="session")
def rsa_key() -> KeyPair:
    return rsa_pair("rsa-1")


@pytest.fixture(scope="session")
def rsa_key2() -> KeyPair:
    return rsa_pair("rsa-2")


@pytest.fixture(scope="session")
def ec_key() -> KeyPair:
    return ec_pair("ec-1")


@pytest.fixture(scope="session")
def ed_key() -> KeyPair:
    return ed_pair("ed-1")


@pytest.fixture
def jwks_server() -> Iterator[JWKSServer]:
    with JWKSServer() as server:
        yield server
