"""Fixtures that give tests real SMTP servers on loopback TCP ports."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.certs import TestCertificates
from tests.dnsd import DNSTestServer, zone_of
from tests.dovecot import PrivateDovecot, find_dovecot
from tests.plugin import need
from tests.postfix import PrivatePostfix, find_postfix
from tests.schedulers import find_program
from tests.smtpd import Script, SMTPTestServer

# The benchmarks measure and report (python3 -m tests.bench); they assert nothing in
# the test run, where shared, noisy CPUs would make any timing target flaky.
collect_ignore = ["bench"]

# Fixtures of one feature's servers, kept in their own module (read its docstring).
pytest_plugins = ["tests.relay_fixtures"]


@pytest.fixture
def smtp_server() -> Iterator[Callable[..., SMTPTestServer]]:
    """Start scripted servers on demand: ``smtp_server(close_at="RCPT")``.

    A factory rather than a server, so that one test can run several (an MX
    list, say) and pick their addresses with ``host="127.0.0.2"``.  A test
    fails if a server hit a bug of its own, so it cannot pass by accident.
    """
    servers: list[SMTPTestServer] = []

    def start(
        script: Script | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        **script_fields: Any,
    ) -> SMTPTestServer:
        if script is not None and script_fields:
            raise TypeError("pass either a Script or Script fields, not both")
        if script is None:
            script = Script(**script_fields)
        server = SMTPTestServer(script, host, port)
        servers.append(server.start())
        return server

    yield start
    for server in servers:
        server.stop()
    errors = [error for server in servers for error in server.errors]
    if errors:
        pytest.fail(f"the test SMTP server itself failed: {errors!r}")


@pytest.fixture(scope="session")
def postfix() -> Iterator[PrivatePostfix]:
    """One private Postfix for the whole session: see tests/postfix.py.

    Skipped where Postfix cannot run, except in CI (``CI`` set), which must
    prove the plugin against the real MTA.  Tests that change its settings
    must put them back.
    """
    if find_postfix() is None:
        need("Postfix is not installed (see .ci/install-system-packages)")
    elif os.geteuid() != 0:
        need("a private Postfix must be started as root")
    with PrivatePostfix() as instance:
        yield instance


def require_program(name: str, package: str, *, root: bool = False) -> str:
    """The path of a Debian program a test drives for real.

    Skipped with the reason where it is missing, except in CI (``CI`` set),
    which must prove contrib/ with the real programs.
    """
    path = find_program(name)
    if path is None:
        need(f"{name} is not installed (Debian package {package}, see .ci/install-system-packages)")
    elif root and os.geteuid() != 0:
        need(f"a private {name} must be started as root")
    assert path is not None
    return path


@pytest.fixture
def icinga2_program() -> str:
    return require_program("icinga2", "icinga2-bin", root=True)


@pytest.fixture
def nagios_program() -> str:
    return require_program("nagios4", "nagios4-core", root=True)


@pytest.fixture
def systemd_analyze() -> str:
    return require_program("systemd-analyze", "systemd")


@pytest.fixture(scope="session")
def certs(tmp_path_factory: pytest.TempPathFactory) -> TestCertificates:
    """A private CA (``certs.ca_file`` for --ca-file) and server TLS contexts on demand."""
    return TestCertificates(tmp_path_factory.mktemp("certs"))


@pytest.fixture
def dns_server() -> Iterator[Callable[..., DNSTestServer]]:
    """Start loopback DNS servers on demand:
    ``dns_server({"example.test": {"MX": ["10 mx1.example.test."]}}, servfail=[...])``.

    Tests point --resolver at ``server.address``; nothing asks the system resolver.
    """
    servers: list[DNSTestServer] = []

    def start(records: dict[str, dict[str, list[str]]], **faults: Any) -> DNSTestServer:
        server = DNSTestServer(zone_of(records), **faults)
        servers.append(server.start())
        return server

    yield start
    for server in servers:
        server.stop()
    errors = [error for server in servers for error in server.errors]
    if errors:
        pytest.fail(f"the test DNS server itself failed: {errors!r}")


MX_DOMAIN = "example.test"


@pytest.fixture
def mx_hosts(
    smtp_server: Callable[..., SMTPTestServer], dns_server: Callable[..., DNSTestServer]
) -> Callable[..., tuple[DNSTestServer, list[SMTPTestServer], list[str]]]:
    """``mx_hosts(script1, script2, ...)`` -> (dns, servers, args for the plugin).

    A mail domain whose MX hosts are test SMTP servers: host n is mx{n}.example.test,
    preference 10*n, A record 127.0.0.{n+1}, all on one port (given to the plugin with
    -p), and the loopback DNS server that says so (--resolver).  ``records`` replaces
    the zone, for tests of what DNS may answer.
    """

    def start(
        *scripts: Script | None, records: dict[str, Any] | None = None, **dns_options: Any
    ) -> tuple[DNSTestServer, list[SMTPTestServer], list[str]]:
        servers = []
        for attempt in range(5):
            try:
                port = 0
                servers = []
                for n, script in enumerate(scripts, start=1):
                    server = smtp_server(script or Script(), host=f"127.0.0.{n + 1}", port=port)
                    port = server.port
                    servers.append(server)
                break
            except OSError:  # the first server's port is taken on another address: again
                for server in servers:
                    server.stop()
                if attempt == 4:
                    raise
        zone = {
            MX_DOMAIN: {"MX": [f"{10 * n} mx{n}.{MX_DOMAIN}." for n in range(1, len(scripts) + 1)]},
            **{
                f"mx{n}.{MX_DOMAIN}": {"A": [f"127.0.0.{n + 1}"]}
                for n in range(1, len(scripts) + 1)
            },
        }
        if records is not None:
            zone = records
        dns = dns_server(zone, **dns_options)
        port = servers[0].port if servers else 25
        return dns, servers, ["--resolver", dns.address, "-p", str(port)]

    return start


@pytest.fixture(scope="session")
def dovecot(certs: TestCertificates) -> Iterator[PrivateDovecot]:
    """One private Dovecot for the whole session: see tests/dovecot.py.

    Skipped where Dovecot cannot run, except in CI (``CI`` set), which must prove the
    round trip against a real mailbox server.  Tests leave the mailboxes as they found
    them (``dovecot.empty()``) when they put messages in.
    """
    if find_dovecot() is None:
        need("Dovecot is not installed (dovecot-imapd, dovecot-pop3d, dovecot-lmtpd)")
    elif os.geteuid() != 0:
        need("a private Dovecot must be started as root")
    with PrivateDovecot(certs) as instance:
        yield instance
