"""Fixtures for the DANE, MTA-STS and TLS-RPT tests: signed DNS behind a real validating
resolver, and HTTPS policy servers.

They live in this directory so that one unbound serves every test here, started once.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import pytest

from tests.dnssec import SignedDNSServer
from tests.unbound import PrivateUnbound, unbound_fixture

_serial = itertools.count(1)


@pytest.fixture(scope="session")
def unbound() -> Iterator[PrivateUnbound]:
    """Debian's unbound validating the signed zone example.test and passing the unsigned
    plain.test as insecure; ``unbound.address`` is for --resolver, ``unbound.authority``
    holds the records.  Tests add records under names of their own (:func:`fresh`), so
    nothing unbound cached for another test gets in the way."""
    yield from unbound_fixture()


@pytest.fixture
def dnssec(unbound: PrivateUnbound) -> SignedDNSServer:
    return unbound.authority


@pytest.fixture
def fresh() -> str:
    """A label no other test uses (``t7``): names under it are new to unbound's cache."""
    return f"t{next(_serial)}"
