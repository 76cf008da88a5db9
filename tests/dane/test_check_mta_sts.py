"""--mta-sts and TLS-RPT end to end: the plugin against test MX hosts, a real HTTPS
policy server on loopback port 443, and the test DNS behind a real unbound."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest

from tests.certs import TestCertificates
from tests.dane.certificates import self_signed, tlsa_text
from tests.dane.conftest import MailDomain
from tests.httpsd import PolicyServer, policy_text
from tests.plugin import run_plugin
from tests.unbound import PrivateUnbound

Domain = Callable[..., MailDomain]
Policies = Callable[..., PolicyServer]


def publish(domain: MailDomain, policy_host: Policies, text: str, **faults) -> PolicyServer:
    """The TXT record, and a policy server serving ``text``."""
    domain.dnssec.add(f"_mta-sts.{domain.domain}", "TXT", ['"v=STSv1; id=20261201T0000"'])
    server = policy_host(domain.domain, **faults).serve(text)
    return server


def check(domain: MailDomain, unbound: PrivateUnbound, certs: TestCertificates, *extra: str):
    return run_plugin(*domain.args(unbound, certs), "--mta-sts", *extra)


def test_an_enforced_policy_covering_every_mx_host_is_ok(
    mail_domain: Domain, policy_host: Policies, unbound: PrivateUnbound, certs: TestCertificates
):
    domain = mail_domain(2)
    publish(domain, policy_host, policy_text("enforce", f"*.{domain.domain}", max_age=86400 * 7))
    run = check(domain, unbound, certs, "-v")
    assert run.returncode == 0, run.stdout
    assert run.status.endswith(
        f"; MTA-STS {domain.domain}: mode enforce, 2 MX host(s) covered with valid TLS, "
        "max_age 7 days"
    )
    assert run.perfdata["mta_sts_max_age_days"] == "7;;;0"
    assert f"MTA-STS TXT _mta-sts.{domain.domain}: id=20261201T0000" in run.lines
    assert (
        f"MTA-STS policy: mode enforce, max_age 604800s (7 days), mx: *.{domain.domain}"
        in run.lines
    )


@pytest.mark.parametrize(
    ("mode", "code", "state"), [("enforce", 2, "CRITICAL"), ("testing", 1, "WARNING")]
)
def test_an_mx_host_the_policy_does_not_cover_is_named(
    mail_domain: Domain,
    policy_host: Policies,
    unbound: PrivateUnbound,
    certs: TestCertificates,
    mode: str,
    code: int,
    state: str,
):
    domain = mail_domain(2)
    publish(domain, policy_host, policy_text(mode, domain.hosts[0]))
    run = check(domain, unbound, certs)
    assert run.returncode == code, run.stdout
    assert run.status.startswith(
        f"SMTP_VERBS {state} - MTA-STS {domain.domain} (mode {mode}): {domain.hosts[1]} is not "
        f"covered by mx: {domain.hosts[0]}"
    )


def test_testing_mode_with_an_mx_host_without_starttls_is_a_warning(
    mail_domain: Domain, policy_host: Policies, unbound: PrivateUnbound, certs: TestCertificates
):
    domain = mail_domain(offer_starttls=False)
    publish(domain, policy_host, policy_text("testing", f"*.{domain.domain}"))
    run = check(domain, unbound, certs)
    assert run.returncode == 1, run.stdout
    assert f"{domain.hosts[0]} has no TLS: STARTTLS not offered" in run.status


def test_enforce_mode_with_a_certificate_pkix_rejects_is_critical(
    mail_domain: Domain, policy_host: Policies, unbound: PrivateUnbound, certs: TestCertificates
):
    domain = mail_domain()
    _, context = self_signed(domain.hosts[0])
    domain.servers[0].script.tls_context = context
    publish(domain, policy_host, policy_text("enforce", f"*.{domain.domain}"))
    run = check(domain, unbound, certs, "-v")
    assert run.returncode == 2
    assert run.status.startswith(
        f"SMTP_VERBS CRITICAL - MTA-STS {domain.domain} (mode enforce): {domain.hosts[0]}: "
        "certificate not valid: self-signed certificate"
    )


def test_testing_mode_with_a_certificate_pkix_rejects_is_a_warning(
    mail_domain: Domain, policy_host: Policies, unbound: PrivateUnbound, certs: TestCertificates
):
    domain = mail_domain()
    _, context = self_signed(domain.hosts[0])
    domain.servers[0].script.tls_context = context
    publish(domain, policy_host, policy_text("testing", f"*.{domain.domain}"))
    run = check(domain, unbound, certs, "-v")
    assert run.returncode == 1, run.stdout
    assert run.status.startswith(
        f"SMTP_VERBS WARNING - MTA-STS {domain.domain} (mode testing): {domain.hosts[0]}: "
        "certificate not valid: self-signed certificate"
    )
    assert "not PKIX-valid (self-signed certificate), so walked again without verification" in (
        run.stdout
    )
    assert domain.servers[0].connections == 2  # the failed handshake, then the walk again


def test_dane_and_mta_sts_judge_a_self_signed_dane_host_each_their_way(
    mail_domain: Domain, policy_host: Policies, unbound: PrivateUnbound, certs: TestCertificates
):
    """DANE is satisfied by its record; MTA-STS in testing mode still wants PKIX."""
    domain = mail_domain()
    der, context = self_signed(domain.hosts[0])
    domain.servers[0].script.tls_context = context
    domain.pin(1, tlsa_text(der, 3, 1, 1))
    publish(domain, policy_host, policy_text("testing", f"*.{domain.domain}"))
    run = check(domain, unbound, certs, "--dane", "-v")
    assert run.returncode == 1, run.stdout
    assert "certificate not valid: self-signed certificate" in run.status
    assert "DANE: TLSA 3 1 1" in run.stdout and "matches (DANE-EE" in run.stdout


def test_without_a_policy_a_certificate_pkix_rejects_is_only_shown(
    mail_domain: Domain, unbound: PrivateUnbound, certs: TestCertificates
):
    """Senders without a policy to honour deliver over any TLS: nothing to alert on."""
    domain = mail_domain()
    _, context = self_signed(domain.hosts[0])
    domain.servers[0].script.tls_context = context
    run = check(domain, unbound, certs, "-v")
    assert run.returncode == 0, run.stdout
    assert "not PKIX-valid (self-signed certificate)" in run.stdout


def test_policy_mode_none_is_ok(
    mail_domain: Domain, policy_host: Policies, unbound: PrivateUnbound, certs: TestCertificates
):
    domain = mail_domain()
    publish(domain, policy_host, policy_text("none", max_age=86400))
    run = check(domain, unbound, certs)
    assert run.returncode == 0, run.stdout
    assert "policy mode none" in run.status


@pytest.mark.parametrize(
    ("fault", "reason"),
    [
        ("expired", "is not valid: certificate has expired"),
        ("redirect", "redirects (HTTP 301 to 'https://example.net/'), not followed (RFC 8461)"),
        ("too_big", "the policy is too big (70"),
        ("html", "serves the policy as 'text/html', not text/plain"),
    ],
)
def test_txt_present_but_policy_unusable_is_critical(
    mail_domain: Domain,
    policy_host: Policies,
    unbound: PrivateUnbound,
    certs: TestCertificates,
    fault: str,
    reason: str,
):
    domain = mail_domain()
    text = policy_text("enforce", f"*.{domain.domain}")
    context = None
    if fault == "expired":
        context = certs.context(f"mta-sts.{domain.domain}", days_left=-1)
    if fault == "too_big":
        text += "x-padding: " + "a" * 70000 + "\r\n"
    server = publish(domain, policy_host, text, context=context)
    if fault == "redirect":
        server.status, server.location = 301, "https://example.net/"
    if fault == "html":
        server.content_type = "text/html"
    run = check(domain, unbound, certs)
    assert run.returncode == 2, run.stdout
    assert run.status.startswith(f"SMTP_VERBS CRITICAL - MTA-STS {domain.domain}: ")
    assert reason in run.status
    assert "senders keep a cached policy and may refuse mail" in run.status


def test_no_txt_record_is_ok_with_a_note_or_critical_when_required(
    mail_domain: Domain, unbound: PrivateUnbound, certs: TestCertificates
):
    domain = mail_domain()
    run = check(domain, unbound, certs)
    assert run.returncode == 0, run.stdout
    assert f"no MTA-STS TXT record at _mta-sts.{domain.domain}" in run.status
    required = run_plugin(*domain.args(unbound, certs), "--mta-sts=required")
    assert required.returncode == 2
    assert "(--mta-sts=required)" in required.status


def test_tlsrpt_destinations_are_shown_and_in_json(
    mail_domain: Domain, policy_host: Policies, unbound: PrivateUnbound, certs: TestCertificates
):
    domain = mail_domain()
    publish(domain, policy_host, policy_text("enforce", f"*.{domain.domain}"))
    domain.dnssec.add(
        f"_smtp._tls.{domain.domain}", "TXT", [f'"v=TLSRPTv1; rua=mailto:tls@{domain.domain}"']
    )
    run = check(domain, unbound, certs, "-v")
    assert run.returncode == 0, run.stdout
    assert f"TLS-RPT _smtp._tls.{domain.domain}: rua=mailto:tls@{domain.domain}" in run.lines
    document = json.loads(check(domain, unbound, certs, "--json").stdout)
    assert document["tlsrpt"]["rua"] == [f"mailto:tls@{domain.domain}"]
    assert document["mta_sts"]["policy"]["mode"] == "enforce"
    assert document["mta_sts"]["id"] == "20261201T0000"
    assert document["mta_sts"]["state"] == "OK"


def test_a_malformed_tlsrpt_record_is_a_warning(
    mail_domain: Domain, unbound: PrivateUnbound, certs: TestCertificates
):
    domain = mail_domain()
    domain.dnssec.add(f"_smtp._tls.{domain.domain}", "TXT", ['"v=TLSRPTv1; rua=tls@nowhere"'])
    run = run_plugin(*domain.args(unbound, certs), "--dane")
    assert run.returncode == 1, run.stdout
    assert run.status.startswith(f"SMTP_VERBS WARNING - TLS-RPT {domain.domain}: TLS-RPT record:")


# -- bad input: one line, UNKNOWN, nothing sent ---------------------------------------


def test_mta_sts_without_mx_is_unknown_and_nothing_is_sent(smtp_server):
    server = smtp_server()
    run = run_plugin("-H", server.host, "-p", str(server.port), "--mta-sts")
    assert (run.returncode, run.lines) == (
        3,
        ["SMTP_VERBS UNKNOWN - --mta-sts needs --mx DOMAIN: a policy belongs to a mail domain"],
    )
    assert server.connections == 0


def test_dane_without_tls_is_unknown_and_nothing_is_sent(smtp_server):
    server = smtp_server()
    run = run_plugin("-H", server.host, "-p", str(server.port), "--dane")
    assert (run.returncode, run.lines) == (
        3,
        ["SMTP_VERBS UNKNOWN - --dane needs TLS: -S/--starttls, --tls or --mx DOMAIN"],
    )
    assert server.connections == 0


def test_mta_sts_with_insecure_is_refused():
    run = run_plugin("--mx", "example.test", "--mta-sts", "--insecure")
    assert run.returncode == 3
    assert run.lines == [
        "SMTP_VERBS UNKNOWN - --mta-sts checks certificates as senders do: drop --insecure"
    ]


def test_a_bad_dane_mode_is_refused():
    run = run_plugin("--mx", "example.test", "--dane=sometimes")
    assert run.returncode == 3 and len(run.lines) == 1
    assert "--dane: invalid choice: 'sometimes'" in run.status


def test_dane_for_an_ip_address_is_refused(smtp_server):
    server = smtp_server()
    run = run_plugin("-H", server.host, "-p", str(server.port), "-S", "--dane")
    assert run.lines == [
        "SMTP_VERBS UNKNOWN - --dane needs a host name: TLSA records belong to names (RFC 7672)"
    ]
    assert (run.returncode, server.connections) == (3, 0)
