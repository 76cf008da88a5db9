"""DANE from DNS to handshake, at module level: real signed records through unbound,
real STARTTLS on the test SMTP servers, the verdict the check will report."""

from __future__ import annotations

import smtplib
import ssl
from collections.abc import Callable

import pytest

from check_smtp_verbs import dane
from check_smtp_verbs.core.deadline import Deadline
from check_smtp_verbs.core.dns import make_resolver, tlsa, validating
from tests.dane.certificates import tlsa_text
from tests.dane.conftest import MailDomain
from tests.unbound import PrivateUnbound


def chain_of(server, host: str) -> list[bytes]:
    """The chain the server presents after STARTTLS (smtplib as a plain test client)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    with smtplib.SMTP(server.host, server.port, local_hostname="test", timeout=5) as client:
        client._host = host  # smtplib wants a host name for SNI
        client.starttls(context=context)
        chain = dane.presented_chain(client.sock)
        client.quit()
    return chain


def verdict(domain: MailDomain, unbound: PrivateUnbound, n: int = 1, **options) -> dane.Verdict:
    resolver = validating(make_resolver((unbound.host, unbound.port)))
    host = domain.hosts[n - 1]
    found = tlsa(host, domain.port, resolver, Deadline(10))
    return dane.judge(found, chain_of(domain.servers[n - 1], host), **options)


def test_a_pinned_leaf_matches(mail_domain: Callable[..., MailDomain], unbound: PrivateUnbound):
    domain = mail_domain()
    pinned = domain.pin_leaf(1)
    result = verdict(domain, unbound)
    assert result.state == "ok"
    assert str(result.result.matched) == pinned


def test_a_pinned_intermediate_matches_by_dane_ta(
    mail_domain: Callable[..., MailDomain], unbound: PrivateUnbound
):
    domain = mail_domain()
    domain.pin_intermediate(1)
    result = verdict(domain, unbound)
    assert result.state == "ok" and "DANE-TA" in result.text


def test_a_record_for_another_host_s_certificate_is_critical(
    mail_domain: Callable[..., MailDomain], unbound: PrivateUnbound
):
    domain = mail_domain(2)
    domain.pin(1, tlsa_text(domain.chains[1].leaf, 3, 1, 1))  # mx1 pinned to mx2's key
    result = verdict(domain, unbound, 1)
    assert result.state == "critical"
    assert result.text.endswith("senders that validate will not deliver")


def test_an_unsigned_domain_is_ok_unless_dane_is_required(
    mail_domain: Callable[..., MailDomain], unbound: PrivateUnbound
):
    domain = mail_domain(zone="plain.test")
    domain.pin_leaf(1)
    assert verdict(domain, unbound).state == "ok"
    assert verdict(domain, unbound, required=True).state == "critical"


@pytest.mark.postfix
def test_a_real_postfix_matches_its_tlsa_records(postfix_mx, postfix, unbound: PrivateUnbound):
    _, host, chain = postfix_mx
    postfix_port = postfix.port
    dnssec = unbound.authority
    dnssec.add(
        f"_{postfix_port}._tcp.{host}",
        "TLSA",
        [tlsa_text(chain.leaf, 3, 1, 1), tlsa_text(chain.intermediate, 2, 0, 2)],
    )
    resolver = validating(make_resolver((unbound.host, unbound.port)))
    found = tlsa(host, postfix_port, resolver, Deadline(10))
    presented = chain_of(postfix, host)
    assert presented == [chain.leaf, chain.intermediate]  # Postfix sends the whole chain
    result = dane.judge(found, presented)
    assert result.state == "ok"
    assert [v.state for v in result.result.verdicts] == ["match", "match"]
