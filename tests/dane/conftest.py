"""Fixtures for the DANE, MTA-STS and TLS-RPT tests: signed DNS behind a real validating
resolver, and HTTPS policy servers.

They live in this directory so that one unbound serves every test here, started once.
"""

from __future__ import annotations

import itertools
import ssl
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.certs import TestCertificates
from tests.dane.certificates import Chain, issue_chain, tlsa_text
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


class MailDomain:
    """A mail domain in the test DNS whose MX hosts are test SMTP servers with STARTTLS.

    Host n is ``mxN.DOMAIN`` at 127.0.0.(n+1), preference 10*n, all on one port; each
    presents a leaf under an intermediate under the test CA (PKIX-valid with
    ``--ca-file certs.ca_file``), so DANE-EE, DANE-TA and MTA-STS can all be shown on
    the same servers.  TLSA records are published with :meth:`pin`.
    """

    def __init__(
        self, domain: str, dnssec: SignedDNSServer, servers: list[Any], chains: list[Chain]
    ) -> None:
        self.domain = domain
        self.dnssec = dnssec
        self.servers = servers
        self.chains = chains
        self.hosts = [f"mx{n}.{domain}" for n in range(1, len(servers) + 1)]
        self.port = servers[0].port if servers else 25

    def args(self, unbound: PrivateUnbound, certs: TestCertificates) -> list[str]:
        """What the plugin needs to check this domain: --mx, the resolver, the port,
        the test CA."""
        return [
            "--mx",
            self.domain,
            "--resolver",
            unbound.address,
            "-p",
            str(self.port),
            "--ca-file",
            str(certs.ca_file),
        ]

    def pin(self, n: int, *texts: str) -> None:
        """Publish TLSA records (``"3 1 1 ab…"``) for host n (1-based) at its port."""
        self.dnssec.add(f"_{self.port}._tcp.{self.hosts[n - 1]}", "TLSA", list(texts))

    def pin_leaf(self, n: int, usage: int = 3, selector: int = 1, mtype: int = 1) -> str:
        text = tlsa_text(self.chains[n - 1].leaf, usage, selector, mtype)
        self.pin(n, text)
        return text

    def pin_intermediate(self, n: int, selector: int = 1, mtype: int = 1) -> str:
        text = tlsa_text(self.chains[n - 1].intermediate, 2, selector, mtype)
        self.pin(n, text)
        return text


@pytest.fixture
def mail_domain(
    smtp_server: Callable[..., Any],
    dnssec: SignedDNSServer,
    certs: TestCertificates,
    fresh: str,
) -> Callable[..., MailDomain]:
    """``mail_domain(2)``: ``tN.example.test`` with two MX hosts offering STARTTLS;
    ``zone="plain.test"`` for an unsigned domain; ``scripts`` to change a server."""

    def make(count: int = 1, *, zone: str = "example.test", **script: Any) -> MailDomain:
        domain = f"{fresh}.{zone}"
        names = [f"mx{n}.{domain}" for n in range(1, count + 1)]
        chains = [issue_chain(name, root=certs.ca) for name in names]
        servers: list[Any] = []
        for attempt in range(5):
            port, servers = 0, []
            try:
                for n, chain in enumerate(chains, start=1):
                    fields = {"tls_context": chain.context, **script}
                    server = smtp_server(host=f"127.0.0.{n + 1}", port=port, **fields)
                    port = server.port
                    servers.append(server)
                break
            except OSError:  # the first server's port is taken on another address
                for server in servers:
                    server.stop()
                if attempt == 4:
                    raise
        dnssec.add(domain, "MX", [f"{10 * n} {name}." for n, name in enumerate(names, 1)])
        for n, name in enumerate(names, start=1):
            dnssec.add(name, "A", [f"127.0.0.{n + 1}"])
        return MailDomain(domain, dnssec, servers, chains)

    return make


@pytest.fixture
def postfix_mx(
    postfix: Any, dnssec: SignedDNSServer, certs: TestCertificates, fresh: str, tmp_path: Any
) -> Iterator[tuple[str, str, Chain]]:
    """The session's private Postfix as the only MX host of a fresh signed domain:
    (domain, MX host name, its chain: a leaf for the MX name under an intermediate under
    the test CA).  STARTTLS is on for the test and off again afterwards."""
    domain = f"{fresh}.example.test"
    host = f"mx1.{domain}"
    chain = issue_chain(host, root=certs.ca)
    cert, key = chain.write(tmp_path)
    dnssec.add(domain, "MX", [f"10 {host}."])
    dnssec.add(host, "A", [postfix.host])
    postfix.enable_starttls(cert, key)
    try:
        yield domain, host, chain
    finally:
        postfix.disable_starttls()
