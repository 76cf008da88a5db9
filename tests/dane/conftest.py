"""Fixtures for the DANE, MTA-STS and TLS-RPT tests: signed DNS behind a real validating
resolver, and HTTPS policy servers.

They live in this directory so that one unbound serves every test here, started once.
"""

from __future__ import annotations

import itertools
import ssl
from collections.abc import Callable, Iterator

import pytest

from tests.certs import TestCertificates
from tests.dnssec import SignedDNSServer
from tests.httpsd import PolicyServer
from tests.plugin import need
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


@pytest.fixture
def policy_host(
    unbound: PrivateUnbound, certs: TestCertificates
) -> Iterator[Callable[..., PolicyServer]]:
    """``policy_host("t3.example.test")``: an HTTPS server on port 443 of its own loopback
    address, named ``mta-sts.t3.example.test`` in the test DNS, with a certificate from
    the test CA (``certs.ca_file``) unless ``context`` says otherwise.  Set what it serves
    with ``server.serve(policy_text(...))`` and its faults as attributes."""
    servers: list[PolicyServer] = []

    def start(domain: str, *, context: ssl.SSLContext | None = None) -> PolicyServer:
        host = f"mta-sts.{domain}"
        try:
            server = PolicyServer(context or certs.context(host))
        except PermissionError:
            need("an MTA-STS policy server must bind port 443: run the tests as root")
        unbound.authority.add(host, "A", [server.host])
        servers.append(server.start())
        return server

    yield start
    for server in servers:
        server.stop()
    errors = [error for server in servers for error in server.errors]
    if errors:
        pytest.fail(f"the test HTTPS server itself failed: {errors!r}")
