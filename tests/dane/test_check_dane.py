"""--dane end to end: the plugin as Nagios runs it, against test SMTP servers and the
private Postfix, with TLSA records served signed through a real validating unbound."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest

from tests.certs import TestCertificates
from tests.dane.certificates import issue_chain, self_signed, tlsa_text
from tests.dane.conftest import MailDomain
from tests.plugin import run_plugin
from tests.unbound import PrivateUnbound

Domain = Callable[..., MailDomain]


def check(domain: MailDomain, unbound: PrivateUnbound, certs: TestCertificates, *extra: str):
    return run_plugin(*domain.args(unbound, certs), "--dane", *extra)


def test_a_matching_dane_ee_record_is_ok_and_named(
    mail_domain: Domain, unbound: PrivateUnbound, certs: TestCertificates
):
    domain = mail_domain(2)
    first, second = domain.pin_leaf(1), domain.pin_leaf(2)
    run = check(domain, unbound, certs, "-v")
    assert run.returncode == 0, run.stdout
    assert run.status.startswith(f"SMTP_VERBS OK - {domain.domain}: 2 of 2 MX hosts OK")
    assert "; DANE: 2 of 2 MX hosts match their TLSA records" in run.status
    assert f"  TLSA {first[:22]}…: match (DANE-EE: the server's public key" in run.stdout
    assert f"  TLSA {second[:22]}…: match" in run.stdout
    assert f"_{domain.port}._tcp.{domain.hosts[0]}" in run.stdout
    assert f"{domain.hosts[0]}_tlsa" in run.perfdata  # the look-up is timed per host


def test_a_matching_dane_ta_record_is_ok(
    mail_domain: Domain, unbound: PrivateUnbound, certs: TestCertificates
):
    domain = mail_domain()
    domain.pin_intermediate(1)
    run = check(domain, unbound, certs, "-v")
    assert run.returncode == 0, run.stdout
    assert "DANE: TLSA 2 1 1" in run.stdout and "DANE-TA: issued under" in run.stdout


def test_a_stale_record_after_a_certificate_change_is_critical_and_names_the_host(
    mail_domain: Domain, unbound: PrivateUnbound, certs: TestCertificates
):
    domain = mail_domain(2)
    domain.pin_leaf(1)
    domain.pin(2, tlsa_text(issue_chain(domain.hosts[1]).leaf, 3, 1, 1))  # the old key
    run = check(domain, unbound, certs)
    assert run.returncode == 2, run.stdout
    assert run.status == (
        f"SMTP_VERBS CRITICAL - {domain.hosts[1]}: DANE: the certificate matches none of the "
        "1 usable TLSA record(s) (DANE-EE: not the server's public key): senders that validate "
        "will not deliver; 1 of 2 MX hosts OK"
    )


def test_only_pkix_usages_are_critical(
    mail_domain: Domain, unbound: PrivateUnbound, certs: TestCertificates
):
    domain = mail_domain()
    domain.pin_leaf(1, usage=1)
    run = check(domain, unbound, certs)
    assert run.returncode == 2
    assert "none of the 1 TLSA record(s) is usable for SMTP" in run.status
    assert "PKIX-EE(1) is not for SMTP" in run.status


def test_bogus_tlsa_records_are_critical(
    mail_domain: Domain, unbound: PrivateUnbound, certs: TestCertificates
):
    domain = mail_domain()
    domain.pin_leaf(1)
    unbound.authority.break_signatures(f"_{domain.port}._tcp.{domain.hosts[0]}")
    run = check(domain, unbound, certs)
    assert run.returncode == 2
    assert run.status == (
        f"SMTP_VERBS CRITICAL - {domain.hosts[0]}: DANE: the TLSA records cannot be validated: "
        "SERVFAIL (EDE 6 DNSSEC Bogus: signature crypto failed from 127.0.0.1): senders that "
        "validate will not deliver; 0 of 1 MX hosts OK"
    )


def test_an_unsigned_domain_is_ok_with_a_note(
    mail_domain: Domain, unbound: PrivateUnbound, certs: TestCertificates
):
    domain = mail_domain(zone="plain.test")
    domain.pin_leaf(1)
    run = check(domain, unbound, certs, "-v")
    assert run.returncode == 0, run.stdout
    assert "are not DNSSEC-signed (or the resolver does not validate): DANE does not apply" in (
        run.stdout
    )
    assert "DANE: no MX host has DNSSEC-signed TLSA records" in run.status


def test_an_unsigned_domain_is_critical_when_dane_is_required(
    mail_domain: Domain, unbound: PrivateUnbound, certs: TestCertificates
):
    domain = mail_domain(zone="plain.test")
    run = run_plugin(*domain.args(unbound, certs), "--dane=required")
    assert run.returncode == 2
    assert "DANE does not apply (--dane=required)" in run.status


def test_no_tlsa_records_is_ok_or_critical_when_required(
    mail_domain: Domain, unbound: PrivateUnbound, certs: TestCertificates
):
    domain = mail_domain()
    assert check(domain, unbound, certs).returncode == 0
    run = run_plugin(*domain.args(unbound, certs), "--dane=required")
    assert run.returncode == 2
    assert f"no TLSA records at _{domain.port}._tcp.{domain.hosts[0]} (--dane=required)" in (
        run.status
    )


def test_a_self_signed_certificate_pinned_by_dane_ee_is_ok(
    mail_domain: Domain, unbound: PrivateUnbound, certs: TestCertificates
):
    """What DANE is for: no CA anyone trusts, and still authenticated."""
    domain = mail_domain()
    der, context = self_signed(domain.hosts[0])
    domain.servers[0].script.tls_context = context
    domain.pin(1, tlsa_text(der, 3, 1, 1))
    run = check(domain, unbound, certs, "-v")
    assert run.returncode == 0, run.stdout
    assert "not verified by PKIX: DANE authenticates it" in run.stdout


def test_the_same_self_signed_certificate_without_dane_fails_pkix(
    mail_domain: Domain, unbound: PrivateUnbound, certs: TestCertificates
):
    domain = mail_domain()
    _, context = self_signed(domain.hosts[0])
    domain.servers[0].script.tls_context = context
    run = run_plugin(*domain.args(unbound, certs), "-S")
    assert run.returncode == 2
    assert "certificate verify failed" in run.status


def test_tlsa_published_but_no_starttls_is_critical(
    mail_domain: Domain, unbound: PrivateUnbound, certs: TestCertificates
):
    domain = mail_domain(offer_starttls=False)
    domain.pin_leaf(1)
    run = check(domain, unbound, certs)
    assert run.returncode == 2
    assert "but STARTTLS not offered: senders that validate will not deliver" in run.status


def test_dane_with_one_host_and_starttls(
    mail_domain: Domain, unbound: PrivateUnbound, certs: TestCertificates
):
    domain = mail_domain()
    domain.pin_leaf(1)
    server = domain.servers[0]
    run = run_plugin(
        "-H",
        domain.hosts[0],
        "-p",
        str(server.port),
        "--resolver",
        unbound.address,
        "-S",
        "--dane",
        "--ca-file",
        str(certs.ca_file),
    )
    assert run.returncode == 0, run.stdout
    assert "DANE: TLSA 3 1 1" in run.status


def test_json_names_the_matched_record(
    mail_domain: Domain, unbound: PrivateUnbound, certs: TestCertificates
):
    domain = mail_domain()
    pinned = domain.pin_leaf(1)
    run = check(domain, unbound, certs, "--json")
    document = json.loads(run.stdout)
    dane = document["hosts"][0]["dane"]
    assert dane["state"] == "OK"
    assert dane["matched"] == pinned
    assert dane["records"][0]["state"] == "match"
    assert dane["tlsa_name"] == f"_{domain.port}._tcp.{domain.hosts[0]}"


@pytest.mark.postfix
def test_the_private_postfix_matches_its_tlsa_records(
    postfix_mx, postfix, unbound: PrivateUnbound, certs: TestCertificates
):
    domain, host, chain = postfix_mx
    unbound.authority.add(
        f"_{postfix.port}._tcp.{host}", "TLSA", [tlsa_text(chain.intermediate, 2, 1, 1)]
    )
    run = run_plugin(
        "--mx",
        domain,
        "--resolver",
        unbound.address,
        "-p",
        str(postfix.port),
        "--ca-file",
        str(certs.ca_file),
        "--dane",
        "-v",
    )
    assert run.returncode == 0, run.stdout
    assert "DANE: 1 of 1 MX hosts match their TLSA records" in run.status
    assert "DANE-TA: issued under" in run.stdout


def test_dane_with_implicit_tls_looks_tlsa_up_before_the_handshake(
    mail_domain: Domain, unbound: PrivateUnbound, certs: TestCertificates
):
    domain = mail_domain(implicit_tls=True)
    domain.pin_leaf(1)
    run = run_plugin(
        "-H",
        domain.hosts[0],
        "-p",
        str(domain.port),
        "--resolver",
        unbound.address,
        "--tls",
        "--dane",
        "--ca-file",
        str(certs.ca_file),
        "-v",
    )
    assert run.returncode == 0, run.stdout
    steps = [line.split()[1] for line in run.lines[1:4]]
    assert steps == ["connect", "TLSA", "TLS"]
    assert "DANE: TLSA 3 1 1" in run.status
