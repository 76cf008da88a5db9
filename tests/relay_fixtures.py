"""Servers for the checks of every address and of what a server must refuse (issue 14).

* ``dual_stack``: one name with an A record (127.0.0.1) and an AAAA record (::1) in the
  loopback DNS server, and a test SMTP server on each address with the same port, so
  one family can be broken (stopped, or a 421 banner) while the other works;
* ``open_relay_postfix``: a second private Postfix that relays for every loopback
  client (``mynetworks = 127.0.0.0/8 [::1]/128``) and still cannot send anything
  anywhere (every transport is ``error:``), the server ``--relay-test`` must catch;
* ``submission_postfix``: STARTTLS mandatory (``smtpd_tls_security_level = encrypt``,
  MAIL FROM before it gets 530) and AUTH only inside TLS (``smtpd_tls_auth_only``);
* ``lax_submission_postfix``: STARTTLS offered but optional and AUTH offered in
  plaintext, the configuration ``--no-plaintext-auth``/``--starttls-required`` report.

The session's ``postfix`` fixture is the MX that refuses relaying (554 5.7.1).
Registered for every test module through ``pytest_plugins`` in conftest.py.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import NamedTuple

import pytest

from tests.certs import TestCertificates
from tests.dnsd import DNSTestServer
from tests.plugin import need
from tests.postfix import SEARCH_PATH, PrivatePostfix, find_postfix
from tests.smtpd import Script, SMTPTestServer

DUAL_NAME = "dual.example.test"
IPV4 = "127.0.0.1"
IPV6 = "::1"
SUBMISSION_USER = "probe"
SUBMISSION_PASSWORD = "s3cret-Submission"
REFUSED_BANNER = "421 4.3.2 Service not available, closing transmission channel"


class DualStack(NamedTuple):
    """A name on both families; ``args`` point the plugin at it (-H, -p, --resolver)."""

    name: str
    dns: DNSTestServer
    ipv4: SMTPTestServer
    ipv6: SMTPTestServer

    @property
    def port(self) -> int:
        return self.ipv4.port

    @property
    def args(self) -> list[str]:
        return ["-H", self.name, "-p", str(self.port), "--resolver", self.dns.address]


@pytest.fixture
def dual_stack(
    smtp_server: Callable[..., SMTPTestServer], dns_server: Callable[..., DNSTestServer]
) -> Callable[..., DualStack]:
    """``dual_stack(ipv4=Script(...), ipv6=Script(...))``: both listeners up, on one port.

    Break a family with ``ipv6=Script(banner=REFUSED_BANNER)`` or by calling
    ``.ipv6.stop()`` (then nothing listens there: connection refused).  ``records``
    replaces the zone, e.g. to take the AAAA record away.
    """

    def start(
        ipv4: Script | None = None,
        ipv6: Script | None = None,
        *,
        records: dict[str, dict[str, list[str]]] | None = None,
    ) -> DualStack:
        for attempt in range(5):
            first = smtp_server(ipv4 or Script(), host=IPV4)
            try:
                second = smtp_server(ipv6 or Script(), host=IPV6, port=first.port)
                break
            except OSError:  # the port is taken on ::1 by someone else: another one
                first.stop()
                if attempt == 4:
                    raise
        zone = records if records is not None else {DUAL_NAME: {"A": [IPV4], "AAAA": [IPV6]}}
        return DualStack(DUAL_NAME, dns_server(zone), first, second)

    return start


def need_postfix() -> None:
    if find_postfix() is None:
        need("Postfix is not installed (see .ci/install-system-packages)")
    elif os.geteuid() != 0:
        need("a private Postfix must be started as root")


def _need_saslpasswd2() -> None:
    if shutil.which("saslpasswd2", path=SEARCH_PATH) is None:
        need("saslpasswd2 is not installed (sasl2-bin)")


@pytest.fixture(scope="session")
def open_relay_postfix() -> Iterator[PrivatePostfix]:
    """A deliberately open relay, beside (never instead of) the session's MX."""
    need_postfix()
    with PrivatePostfix(open_relay=True, name="open-relay") as instance:
        yield instance


def _submission(certs: TestCertificates, directory: Path, name: str) -> PrivatePostfix:
    """A started instance with STARTTLS (a certificate for its name and 127.0.0.1 from
    the test CA) and Cyrus SASL AUTH for SUBMISSION_USER; enable_auth() makes AUTH
    TLS-only, which the caller may undo."""
    instance = PrivatePostfix(name=name).start()
    try:
        cert, key = certs.write_pair(directory, instance.hostname, IPV4)
        instance.enable_starttls(cert, key)
        instance.enable_auth({SUBMISSION_USER: SUBMISSION_PASSWORD})
    except BaseException:
        instance.stop()
        raise
    return instance


@pytest.fixture(scope="session")
def submission_postfix(
    certs: TestCertificates, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[PrivatePostfix]:
    """A submission port as it should be: no mail and no AUTH before STARTTLS."""
    need_postfix()
    _need_saslpasswd2()
    instance = _submission(certs, tmp_path_factory.mktemp("submission"), "submission")
    try:
        instance.postconf(smtpd_tls_security_level="encrypt", smtpd_tls_auth_only="yes")
        instance.reload()
        yield instance
    finally:
        instance.stop()


@pytest.fixture(scope="session")
def lax_submission_postfix(
    certs: TestCertificates, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[PrivatePostfix]:
    """A submission port as it must not be: AUTH offered and mail taken before STARTTLS."""
    need_postfix()
    _need_saslpasswd2()
    instance = _submission(certs, tmp_path_factory.mktemp("lax-submission"), "lax-submission")
    try:
        instance.postconf(smtpd_tls_security_level="may", smtpd_tls_auth_only="no")
        instance.reload()
        yield instance
    finally:
        instance.stop()
