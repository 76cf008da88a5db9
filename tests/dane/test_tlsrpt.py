"""TLS reporting (RFC 8460): the record that tells senders where to report failures."""

from __future__ import annotations

import pytest

from check_smtp_verbs.core.deadline import Deadline
from check_smtp_verbs.core.dns import make_resolver, validating
from check_smtp_verbs.tlsrpt import lookup, parse
from tests.dnssec import SignedDNSServer
from tests.unbound import PrivateUnbound


def test_rua_destinations_are_listed_in_order():
    found = parse("example.test", ["v=TLSRPTv1; rua=mailto:tls@example.test, https://r.example/in"])
    assert found.state == "present"
    assert found.rua == ("mailto:tls@example.test", "https://r.example/in")


def test_other_txt_records_are_ignored():
    found = parse("example.test", ["v=spf1 -all", "v=TLSRPTv1;rua=mailto:a@example.test;"])
    assert found.rua == ("mailto:a@example.test",)


def test_no_record_is_absent_not_a_fault():
    found = parse("example.test", [])
    assert found.state == "absent"
    assert found.error == "no TLS-RPT record at _smtp._tls.example.test"


@pytest.mark.parametrize(
    ("records", "reason"),
    [
        (["v=TLSRPTv1;"], "it has no rua= destination"),
        (["v=TLSRPTv1; rua=ftp://example.test/x"], "rua 'ftp://example.test/x' is not a mailto:"),
        (["v=TLSRPTv1; rua=mailto:nobody"], "rua 'mailto:nobody' is not a mailto:"),
        (["v=TLSRPTv1; rua"], "'rua' is not name=value"),
        (["v=TLSRPTv1x; rua=mailto:a@b.test"], "it does not start with v=TLSRPTv1;"),
        (
            ["v=TLSRPTv1; rua=mailto:a@b.test", "v=TLSRPTv1; rua=mailto:c@d.test"],
            "senders then send no reports (RFC 8460 3)",
        ),
    ],
)
def test_a_malformed_record_says_why(records: list[str], reason: str):
    found = parse("example.test", records)
    assert found.state == "malformed"
    assert reason in found.error


def test_the_record_is_looked_up_at_smtp_tls(
    unbound: PrivateUnbound, dnssec: SignedDNSServer, fresh: str
):
    domain = f"{fresh}.example.test"
    dnssec.add(f"_smtp._tls.{domain}", "TXT", [f'"v=TLSRPTv1; rua=mailto:tls@{domain}"'])
    resolver = validating(make_resolver((unbound.host, unbound.port)))
    found = lookup(domain, resolver, Deadline(10))
    assert (found.state, found.rua) == ("present", (f"mailto:tls@{domain}",))
