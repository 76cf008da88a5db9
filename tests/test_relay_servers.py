"""The servers behind the every-address and must-refuse checks behave as those tests rely on.

Checked with independent clients (smtplib, ssl, dnspython), so a test of the plugin
that passes against these servers passes because of the plugin, not because of them.
"""

from __future__ import annotations

import smtplib
import socket
import ssl
import warnings

import dns.resolver
import pytest

from tests.postfix import PrivatePostfix, instance_processes
from tests.relay_fixtures import (
    DUAL_NAME,
    IPV4,
    IPV6,
    REFUSED_BANNER,
    SUBMISSION_PASSWORD,
    SUBMISSION_USER,
)
from tests.smtpd import LEGACY_CIPHERS, TLS_REQUIRED_REPLY, Script, limit_tls_versions

FOREIGN = "someone@example.org"


def ehlo_features(smtp: smtplib.SMTP) -> dict[str, str]:
    code, _ = smtp.ehlo("client.test")
    assert code == 250
    return dict(smtp.esmtp_features)


def starttls(smtp: smtplib.SMTP, hostname: str, certs) -> None:
    smtp._host = hostname  # smtplib verifies against the host it was given
    code, _ = smtp.starttls(context=ssl.create_default_context(cafile=str(certs.ca_file)))
    assert code == 220


# --- the private Postfix, three ways ------------------------------------------------


@pytest.mark.postfix
def test_the_mx_refuses_to_relay_and_the_open_relay_accepts(postfix, open_relay_postfix):
    with smtplib.SMTP(postfix.host, postfix.port, timeout=10) as smtp:
        smtp.mail("probe@verbs.test")
        code, text = smtp.rcpt(FOREIGN)
    assert (code, text.split()[0]) == (554, b"5.7.1")
    with smtplib.SMTP(open_relay_postfix.host, open_relay_postfix.port, timeout=10) as smtp:
        smtp.mail("probe@verbs.test")
        assert smtp.rcpt(FOREIGN) == (250, b"2.1.5 Ok")


@pytest.mark.postfix
def test_what_the_open_relay_accepts_is_discarded_not_sent(open_relay_postfix):
    with smtplib.SMTP(open_relay_postfix.host, open_relay_postfix.port, timeout=10) as smtp:
        refused = smtp.sendmail("probe@verbs.test", [FOREIGN], b"Subject: relayed?\r\n\r\nno\r\n")
    assert refused == {}
    assert open_relay_postfix.wait_for_log(
        r"open-relay/discard\[\d+\]: \w+: to=<someone@example\.org>, relay=none, "
        r".*status=sent \(open relay test instance\)"
    )


@pytest.mark.postfix
def test_instances_run_side_by_side_with_nothing_shared(
    postfix, open_relay_postfix, submission_postfix, lax_submission_postfix
):
    instances = [postfix, open_relay_postfix, submission_postfix, lax_submission_postfix]
    for setting in ("queue_directory", "data_directory", "config_directory"):
        values = {instance.setting(setting) for instance in instances}
        assert len(values) == len(instances), setting
    assert len({instance.port for instance in instances}) == len(instances)
    syslog_names = [instance.setting("syslog_name") for instance in instances]
    assert syslog_names == ["postfix", "open-relay", "submission", "lax-submission"]
    masters = {
        (instance.base_dir / "spool" / "pid" / "master.pid").read_text().strip()
        for instance in instances
    }
    assert len(masters) == len(instances)
    for instance in instances:
        assert instance.setting("default_transport").split(":")[0] in ("error", "discard")
        assert instance_processes(instance.config_dir)


@pytest.mark.postfix
def test_a_submission_port_refuses_mail_and_hides_auth_before_starttls(submission_postfix, certs):
    with smtplib.SMTP(submission_postfix.host, submission_postfix.port, timeout=10) as smtp:
        before = ehlo_features(smtp)
        assert "starttls" in before and "auth" not in before
        assert smtp.mail("probe@verbs.test") == (530, TLS_REQUIRED_REPLY[4:].encode())
        starttls(smtp, submission_postfix.hostname, certs)
        assert ehlo_features(smtp)["auth"].split() == ["PLAIN", "LOGIN", "CRAM-MD5"]
        assert smtp.login(SUBMISSION_USER, SUBMISSION_PASSWORD)[0] == 235
        assert smtp.mail("probe@verbs.test")[0] == 250


@pytest.mark.postfix
def test_a_lax_submission_port_offers_auth_and_takes_mail_before_starttls(
    lax_submission_postfix, certs
):
    server = lax_submission_postfix
    with smtplib.SMTP(server.host, server.port, timeout=10) as smtp:
        before = ehlo_features(smtp)
        assert before["auth"].split() == ["PLAIN", "LOGIN", "CRAM-MD5"]
        assert "starttls" in before
        assert smtp.mail("probe@verbs.test")[0] == 250
        assert smtp.rset()[0] == 250
        starttls(smtp, server.hostname, certs)
        assert smtp.login(SUBMISSION_USER, SUBMISSION_PASSWORD)[0] == 235


@pytest.mark.postfix
def test_postfix_with_ipv6_listens_on_both_loopback_addresses_with_one_port(postfix):
    with PrivatePostfix(ipv6=True, name="dual-stack") as instance:
        for host in (IPV4, IPV6):
            with smtplib.SMTP(host, instance.port, timeout=10) as smtp:
                assert smtp.ehlo("client.test")[0] == 250
        assert instance.wait_for_log(r"connect from unknown\[::1\]")
        assert instance.setting("inet_protocols") == "all"


# --- the test SMTP server on IPv6, with TLS rules and old TLS versions ---------------


def test_the_test_server_listens_on_ipv6_loopback(smtp_server):
    server = smtp_server(host=IPV6)
    with smtplib.SMTP(IPV6, server.port, timeout=5) as smtp:
        assert smtp.noop()[0] == 250
        assert smtp.sock.family == socket.AF_INET6
    assert server.received == ["noop", "QUIT"]


def test_require_tls_answers_530_to_mail_rcpt_data_and_auth_until_starttls(smtp_server, certs):
    server = smtp_server(tls_context=certs.context(), require_tls=True, auth_mechanisms=["PLAIN"])
    with smtplib.SMTP(server.host, server.port, timeout=5) as smtp:
        smtp.ehlo("client.test")
        for command in ("MAIL FROM:<a@b.test>", "RCPT TO:<c@d.test>", "DATA", "AUTH PLAIN"):
            assert smtp.docmd(command) == (530, b"5.7.0 Must issue a STARTTLS command first")
        assert smtp.noop()[0] == 250
        starttls(smtp, "smtpd.test", certs)
        smtp.ehlo("client.test")
        assert smtp.mail("a@b.test")[0] == 250


def test_auth_after_tls_only_is_neither_offered_nor_accepted_before_starttls(smtp_server, certs):
    server = smtp_server(
        tls_context=certs.context(),
        auth_mechanisms=["PLAIN"],
        users={"probe": "pw"},
        auth_after_tls_only=True,
    )
    with smtplib.SMTP(server.host, server.port, timeout=5) as smtp:
        assert "auth" not in ehlo_features(smtp)
        assert smtp.docmd("AUTH", "PLAIN AHByb2JlAHB3")[0] == 503
        starttls(smtp, "smtpd.test", certs)
        assert ehlo_features(smtp)["auth"].split() == ["PLAIN"]
        assert smtp.login("probe", "pw")[0] == 235


def _old_tls_client(certs, version: ssl.TLSVersion, ciphers: str | None) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(certs.ca_file))
    if ciphers is not None:
        context.set_ciphers(ciphers)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        context.minimum_version = context.maximum_version = version
    return context


@pytest.mark.parametrize(
    ("version", "name"), [(ssl.TLSVersion.TLSv1, "TLSv1"), (ssl.TLSVersion.TLSv1_1, "TLSv1.1")]
)
def test_local_openssl_negotiates_tls_1_0_and_1_1_at_security_level_0(
    smtp_server, certs, version, name
):
    """OpenSSL 3.0 here still speaks TLS 1.0/1.1, but only at @SECLEVEL=0 on both ends,
    so a forbidden-version check must lower its own level to offer them at all."""
    server = smtp_server(tls_context=limit_tls_versions(certs.context(), "1.0", "1.1"))
    with smtplib.SMTP(server.host, server.port, timeout=5) as smtp:
        smtp.ehlo("client.test")
        smtp._host = "smtpd.test"
        smtp.starttls(context=_old_tls_client(certs, version, LEGACY_CIPHERS))
        assert smtp.sock.version() == name
    assert server.tls_versions == [name]


def test_at_the_default_security_level_a_client_cannot_even_offer_tls_1_0(smtp_server, certs):
    server = smtp_server(tls_context=limit_tls_versions(certs.context(), "1.0", "1.3"))
    with smtplib.SMTP(server.host, server.port, timeout=5) as smtp:
        smtp.ehlo("client.test")
        smtp._host = "smtpd.test"
        client = _old_tls_client(certs, ssl.TLSVersion.TLSv1, None)
        with pytest.raises(ssl.SSLError, match="NO_CIPHERS_AVAILABLE"):
            smtp.starttls(context=client)


def test_a_server_limited_to_tls_1_1_is_refused_by_a_default_client(smtp_server, certs):
    server = smtp_server(tls_context=limit_tls_versions(certs.context(), "1.0", "1.1"))
    with smtplib.SMTP(server.host, server.port, timeout=5) as smtp:
        smtp.ehlo("client.test")
        smtp._host = "smtpd.test"
        with pytest.raises(ssl.SSLError):
            smtp.starttls(context=ssl.create_default_context(cafile=str(certs.ca_file)))
    assert server.tls_versions == []


def test_a_server_from_tls_1_2_refuses_a_client_that_offers_only_tls_1_0(smtp_server, certs):
    server = smtp_server(tls_context=limit_tls_versions(certs.context(), "1.2"))
    with smtplib.SMTP(server.host, server.port, timeout=5) as smtp:
        smtp.ehlo("client.test")
        smtp._host = "smtpd.test"
        with pytest.raises(ssl.SSLError):
            smtp.starttls(context=_old_tls_client(certs, ssl.TLSVersion.TLSv1, LEGACY_CIPHERS))
    assert server.tls_versions == []


# --- one name, two families ----------------------------------------------------------


def addresses_of(name: str, dns_address: str, kind: str) -> list[str]:
    resolver = dns.resolver.Resolver(configure=False)
    host, port = dns_address.rsplit(":", 1)
    resolver.nameservers, resolver.port = [host], int(port)
    return [record.address for record in resolver.resolve(name, kind, lifetime=5)]


def test_dual_stack_name_has_an_a_and_an_aaaa_record_served_on_loopback(dual_stack):
    servers = dual_stack()
    assert addresses_of(DUAL_NAME, servers.dns.address, "A") == [IPV4]
    assert addresses_of(DUAL_NAME, servers.dns.address, "AAAA") == [IPV6]
    assert servers.args == [
        "-H", DUAL_NAME, "-p", str(servers.port), "--resolver", servers.dns.address,
    ]  # fmt: skip


def test_dual_stack_listens_on_both_families_with_one_port(dual_stack):
    servers = dual_stack()
    assert servers.ipv4.port == servers.ipv6.port
    for host, server in ((IPV4, servers.ipv4), (IPV6, servers.ipv6)):
        with smtplib.SMTP(host, servers.port, timeout=5) as smtp:
            assert smtp.noop()[0] == 250
        assert server.received == ["noop", "QUIT"]


@pytest.mark.parametrize("broken", ["ipv4", "ipv6"])
def test_either_family_can_answer_421_while_the_other_works(dual_stack, broken):
    scripts = {broken: Script(banner=REFUSED_BANNER)}
    servers = dual_stack(**scripts)
    for family, host in (("ipv4", IPV4), ("ipv6", IPV6)):
        smtp = smtplib.SMTP(timeout=5)
        code, _ = smtp.connect(host, servers.port)
        smtp.close()
        assert code == (421 if family == broken else 220)


@pytest.mark.parametrize("broken", ["ipv4", "ipv6"])
def test_either_familys_listener_can_be_stopped_while_the_other_works(dual_stack, broken):
    servers = dual_stack()
    getattr(servers, broken).stop()
    for family, host in (("ipv4", IPV4), ("ipv6", IPV6)):
        if family == broken:
            with pytest.raises(ConnectionRefusedError):
                socket.create_connection((host, servers.port), timeout=5).close()
        else:
            with smtplib.SMTP(host, servers.port, timeout=5) as smtp:
                assert smtp.noop()[0] == 250
