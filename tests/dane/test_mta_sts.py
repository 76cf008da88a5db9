"""MTA-STS (RFC 8461): the TXT record, the policy fetch and the policy's rules.

The fetch tests run against a real HTTPS server on loopback port 443 whose name exists
only in the test DNS, so they also prove the policy host is resolved through the
chosen resolver and never through /etc/hosts or the system's resolver.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from check_smtp_verbs.core.deadline import Deadline
from check_smtp_verbs.core.dns import make_resolver, validating
from check_smtp_verbs.mta_sts import (
    MAX_POLICY_BYTES,
    Policy,
    PolicyError,
    lookup,
    mx_pattern_matches,
    parse_policy,
    parse_txt,
)
from tests.certs import TestCertificates
from tests.dnssec import SignedDNSServer
from tests.httpsd import PolicyServer, policy_text
from tests.unbound import PrivateUnbound

# -- the TXT record ----------------------------------------------------------------


def test_the_txt_record_gives_the_policy_id():
    found = parse_txt(["v=STSv1; id=20240101T000000"])
    assert (found.state, found.id) == ("present", "20240101T000000")


def test_other_txt_records_at_the_name_are_ignored():
    found = parse_txt(["google-site-verification=abc", "v=STSv1;id=abc123;"])
    assert (found.state, found.id) == ("present", "abc123")


def test_no_sts_txt_record_is_absent():
    assert parse_txt([]).state == "absent"
    assert parse_txt(["v=spf1 -all"]).state == "absent"


@pytest.mark.parametrize(
    ("records", "reason"),
    [
        (["v=STSv1; id=1", "v=STSv1; id=2"], "2 TXT records start with v=STSv1"),
        (["v=STSv1;"], "the record has no id="),
        (["v=STSv1; id=has-dash"], "is not 1 to 32 letters and digits"),
        (["v=STSv1; id=" + "a" * 33], "is not 1 to 32 letters and digits"),
        (["v=STSv1; garbage"], "is not name=value"),
        (["v=STSv10; id=1"], "does not start with v=STSv1;"),
    ],
)
def test_a_malformed_txt_record_says_why(records: list[str], reason: str):
    found = parse_txt(records)
    assert found.state == "malformed"
    assert reason in found.error


# -- the policy --------------------------------------------------------------------


def test_a_policy_parses_with_crlf_or_lf():
    text = "version: STSv1\r\nmode: enforce\r\nmx: mx1.example.test\nmx: *.example.net\n"
    text += "max_age: 86400\n"
    assert parse_policy(text) == Policy(
        "STSv1", "enforce", 86400, ("mx1.example.test", "*.example.net")
    )


def test_unknown_fields_are_extensions_and_ignored():
    text = policy_text("testing", "mx.example.test") + "x-extension: yes\r\n"
    assert parse_policy(text).mode == "testing"


def test_mode_none_needs_no_mx():
    assert parse_policy("version: STSv1\nmode: none\nmax_age: 0\n").mx == ()


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("mode: enforce\nmx: a.example\nmax_age: 1\n", "no version: field"),
        ("version: STSv2\nmode: enforce\nmx: a.example\nmax_age: 1\n", "'STSv2' is not STSv1"),
        (
            "version: STSv1\nmode: strict\nmx: a.example\nmax_age: 1\n",
            "is not enforce, testing or none",
        ),
        (
            "version: STSv1\nmode: enforce\nmx: a.example\nmax_age: soon\n",
            "is not a number of seconds",
        ),
        ("version: STSv1\nmode: enforce\nmx: a.example\nmax_age: 31557601\n", "more than a year"),
        ("version: STSv1\nmode: enforce\nmax_age: 1\n", "enforce mode lists no mx: host"),
        ("version: STSv1\nmode: enforce\nmx: mx.*.example\nmax_age: 1\n", "is not a host name"),
        ("<html>moved</html>\n", "line 1 is not 'key: value'"),
    ],
)
def test_an_invalid_policy_says_why(text: str, reason: str):
    with pytest.raises(PolicyError) as raised:
        parse_policy(text)
    assert reason in str(raised.value)


@pytest.mark.parametrize(
    ("pattern", "host", "covered"),
    [
        ("mx1.example.test", "MX1.example.test.", True),
        ("mx1.example.test", "mx2.example.test", False),
        ("*.example.test", "mx1.example.test", True),
        ("*.example.test", "example.test", False),
        ("*.example.test", "a.mx1.example.test", False),
    ],
)
def test_mx_patterns_allow_a_wildcard_only_as_the_whole_left_most_label(
    pattern: str, host: str, covered: bool
):
    assert mx_pattern_matches(pattern, host) is covered


# -- the look-up against real servers ------------------------------------------------


@pytest.fixture
def resolver(unbound: PrivateUnbound):
    return validating(make_resolver((unbound.host, unbound.port)))


@pytest.fixture
def domain(dnssec: SignedDNSServer, fresh: str) -> str:
    """A mail domain with an MTA-STS TXT record (the policy host is up to the test)."""
    name = f"{fresh}.example.test"
    dnssec.add(f"_mta-sts.{name}", "TXT", ['"v=STSv1; id=20240101"'])
    return name


def test_a_published_policy_is_fetched_and_parsed(
    domain: str, policy_host: Callable[..., PolicyServer], resolver, certs: TestCertificates
):
    server = policy_host(domain).serve(policy_text("enforce", f"mx1.{domain}", f"*.{domain}"))
    found = lookup(domain, resolver, Deadline(10), cafile=str(certs.ca_file))
    assert found.state == "ok", found.error
    assert found.txt.id == "20240101"
    assert found.policy == Policy("STSv1", "enforce", 604800, (f"mx1.{domain}", f"*.{domain}"))
    assert server.requests == ["GET /.well-known/mta-sts.txt HTTP/1.1"]
    assert server.hosts == [f"mta-sts.{domain}"]


def test_a_chunked_policy_is_read_whole(
    domain: str, policy_host: Callable[..., PolicyServer], resolver, certs: TestCertificates
):
    server = policy_host(domain).serve(policy_text("testing", f"mx1.{domain}"))
    server.chunked = True
    found = lookup(domain, resolver, Deadline(10), cafile=str(certs.ca_file))
    assert found.state == "ok" and found.policy.mode == "testing"


def test_no_txt_record_means_no_mta_sts(dnssec: SignedDNSServer, fresh: str, resolver):
    dnssec.add(f"{fresh}.example.test", "MX", [f"10 mx1.{fresh}.example.test."])
    found = lookup(f"{fresh}.example.test", resolver, Deadline(10))
    assert found.state == "none"
    assert found.error == f"no MTA-STS TXT record at _mta-sts.{fresh}.example.test"


def test_a_malformed_txt_record_is_reported(dnssec: SignedDNSServer, fresh: str, resolver):
    dnssec.add(f"_mta-sts.{fresh}.example.test", "TXT", ['"v=STSv1; id=a-b"'])
    found = lookup(f"{fresh}.example.test", resolver, Deadline(10))
    assert found.state == "malformed"
    assert "id='a-b' is not 1 to 32 letters and digits" in found.error


def fetch_failure(domain: str, resolver, certs: TestCertificates, seconds: float = 10) -> str:
    found = lookup(domain, resolver, Deadline(seconds), cafile=str(certs.ca_file))
    assert found.state == "failed", found
    assert found.txt.id == "20240101"
    return found.error


def test_an_expired_policy_host_certificate_fails_the_fetch(
    domain: str, policy_host: Callable[..., PolicyServer], resolver, certs: TestCertificates
):
    expired = certs.context(f"mta-sts.{domain}", days_left=-1)
    policy_host(domain, context=expired).serve(policy_text("enforce", f"mx1.{domain}"))
    assert fetch_failure(domain, resolver, certs) == (
        f"the certificate of mta-sts.{domain} is not valid: certificate has expired"
    )


def test_a_policy_host_certificate_from_an_unknown_ca_fails_the_fetch(
    domain: str, policy_host: Callable[..., PolicyServer], resolver, certs: TestCertificates
):
    stranger = certs.context(f"mta-sts.{domain}", ca=certs.stranger)
    policy_host(domain, context=stranger).serve(policy_text("enforce", f"mx1.{domain}"))
    assert "unable to get local issuer certificate" in fetch_failure(domain, resolver, certs)


def test_a_policy_host_certificate_for_another_name_fails_the_fetch(
    domain: str, policy_host: Callable[..., PolicyServer], resolver, certs: TestCertificates
):
    wrong = certs.context("www.example.test")
    policy_host(domain, context=wrong).serve(policy_text("enforce", f"mx1.{domain}"))
    error = fetch_failure(domain, resolver, certs)
    assert error == (
        f"the certificate of mta-sts.{domain} is not valid: "
        f"name mismatch: the certificate is not valid for mta-sts.{domain}"
    )


def test_a_redirect_is_refused_not_followed(
    domain: str, policy_host: Callable[..., PolicyServer], resolver, certs: TestCertificates
):
    server = policy_host(domain).serve(policy_text("enforce", f"mx1.{domain}"))
    server.status, server.location = 301, f"https://mta-sts.{domain}/elsewhere.txt"
    error = fetch_failure(domain, resolver, certs)
    assert error == (
        f"mta-sts.{domain} redirects (HTTP 301 to "
        f"'https://mta-sts.{domain}/elsewhere.txt'), not followed (RFC 8461)"
    )
    assert len(server.requests) == 1


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_a_policy_over_the_size_bound_is_refused(
    domain: str,
    policy_host: Callable[..., PolicyServer],
    resolver,
    certs: TestCertificates,
    chunked: bool,
):
    padding = "x-padding: " + "a" * 1000 + "\r\n"
    text = policy_text("enforce", f"mx1.{domain}") + padding * (MAX_POLICY_BYTES // 1000)
    server = policy_host(domain).serve(text)
    server.chunked = chunked
    assert "the policy is too big" in fetch_failure(domain, resolver, certs)
    assert "more than 64 KiB" in fetch_failure(domain, resolver, certs)


def test_a_policy_served_as_html_is_refused(
    domain: str, policy_host: Callable[..., PolicyServer], resolver, certs: TestCertificates
):
    server = policy_host(domain).serve(policy_text("enforce", f"mx1.{domain}"))
    server.content_type = "text/html; charset=utf-8"
    error = fetch_failure(domain, resolver, certs)
    assert error == f"mta-sts.{domain} serves the policy as 'text/html', not text/plain"


def test_a_missing_policy_is_an_http_error(
    domain: str, policy_host: Callable[..., PolicyServer], resolver, certs: TestCertificates
):
    server = policy_host(domain).serve("")
    server.status = 404
    assert "answered HTTP 404 Not Found" in fetch_failure(domain, resolver, certs)


def test_an_invalid_policy_fails_with_the_parse_error(
    domain: str, policy_host: Callable[..., PolicyServer], resolver, certs: TestCertificates
):
    policy_host(domain).serve("version: STSv1\r\nmode: enforce\r\nmax_age: 86400\r\n")
    assert fetch_failure(domain, resolver, certs) == "a policy in enforce mode lists no mx: host"


def test_a_dribbling_policy_host_is_cut_off_at_the_deadline(
    domain: str, policy_host: Callable[..., PolicyServer], resolver, certs: TestCertificates
):
    server = policy_host(domain).serve(policy_text("enforce", f"mx1.{domain}"))
    server.dribble = 0.1
    started = time.monotonic()
    error = fetch_failure(domain, resolver, certs, seconds=1.5)
    assert time.monotonic() - started < 2.5
    assert error == f"timeout after 1.5s fetching https://mta-sts.{domain}/.well-known/mta-sts.txt"


def test_a_policy_host_missing_from_dns_cannot_be_resolved(
    domain: str, resolver, certs: TestCertificates
):
    assert fetch_failure(domain, resolver, certs).startswith(
        f"cannot resolve mta-sts.{domain}: name does not exist"
    )


def test_a_policy_host_that_refuses_connections_is_unreachable(
    domain: str, dnssec: SignedDNSServer, resolver, certs: TestCertificates
):
    dnssec.add(f"mta-sts.{domain}", "A", ["127.0.0.254"])  # nothing listens on 443 there
    error = fetch_failure(domain, resolver, certs)
    assert error == f"cannot connect to mta-sts.{domain} (127.0.0.254:443: Connection refused)"
