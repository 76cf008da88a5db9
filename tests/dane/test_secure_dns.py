"""DNSSEC-aware look-ups (core/dns.py) against a real validating resolver.

DANE must believe only what the resolver validated, and must tell a broken signature
(a sender will not deliver) from an unsigned zone (DANE does not apply) and from a
name with no TLSA records (DANE not published).
"""

from __future__ import annotations

import pytest

from check_smtp_verbs.core.deadline import Deadline
from check_smtp_verbs.core.dns import (
    TlsaRecord,
    make_resolver,
    secure_query,
    tlsa,
    txt,
    validating,
)
from tests.dnssec import SignedDNSServer
from tests.unbound import PrivateUnbound

EE = "3 1 1 " + "ab" * 32


@pytest.fixture
def resolver(unbound: PrivateUnbound):
    return validating(make_resolver((unbound.host, unbound.port)))


def deadline() -> Deadline:
    return Deadline(10)


def test_unbound_sets_ad_for_the_signed_zone(dnssec: SignedDNSServer, resolver, fresh: str):
    dnssec.add(f"{fresh}.example.test", "A", ["127.0.0.2"])
    answer = secure_query(resolver, f"{fresh}.example.test", "A", deadline())
    assert answer.secure
    assert [r.address for r in answer.records] == ["127.0.0.2"]


def test_a_signed_denial_is_authenticated_too(dnssec: SignedDNSServer, resolver, fresh: str):
    dnssec.add(f"{fresh}.example.test", "A", ["127.0.0.2"])
    nodata = secure_query(resolver, f"{fresh}.example.test", "TLSA", deadline())
    nxdomain = secure_query(resolver, f"nothing.{fresh}.example.test", "A", deadline())
    assert (nodata.secure, nodata.exists, nodata.records) == (True, True, ())
    assert (nxdomain.secure, nxdomain.exists) == (True, False)


def test_the_unsigned_zone_answers_without_ad(dnssec: SignedDNSServer, resolver, fresh: str):
    dnssec.add(f"{fresh}.plain.test", "A", ["127.0.0.3"])
    answer = secure_query(resolver, f"{fresh}.plain.test", "A", deadline())
    assert answer.state == "answer" and answer.records
    assert not answer.authenticated


def test_a_broken_signature_is_servfail_named_bogus(dnssec: SignedDNSServer, resolver, fresh: str):
    dnssec.add(f"{fresh}.example.test", "A", ["127.0.0.2"])
    dnssec.break_signatures(f"{fresh}.example.test")
    answer = secure_query(resolver, f"{fresh}.example.test", "A", deadline())
    assert answer.state == "servfail"
    assert "SERVFAIL" in answer.error and "DNSSEC Bogus" in answer.error


def test_tlsa_of_a_signed_host_is_secure_with_its_records(
    dnssec: SignedDNSServer, resolver, fresh: str
):
    host = f"mx.{fresh}.example.test"
    dnssec.add(host, "A", ["127.0.0.2"])
    dnssec.add(f"_25._tcp.{host}", "TLSA", [EE])
    found = tlsa(host, 25, resolver, deadline())
    assert found.state == "secure"
    assert found.records == (TlsaRecord(3, 1, 1, bytes.fromhex("ab" * 32)),)
    assert found.owner == f"_25._tcp.{host}"
    assert found.names == (host,)


def test_tlsa_absent_under_a_signed_host_is_none(dnssec: SignedDNSServer, resolver, fresh: str):
    host = f"mx.{fresh}.example.test"
    dnssec.add(host, "A", ["127.0.0.2"])
    found = tlsa(host, 25, resolver, deadline())
    assert found.state == "none"
    assert "no TLSA records at _25._tcp." in found.error


def test_tlsa_of_an_unsigned_host_does_not_apply(dnssec: SignedDNSServer, resolver, fresh: str):
    host = f"mx.{fresh}.plain.test"
    dnssec.add(host, "A", ["127.0.0.2"])
    dnssec.add(f"_25._tcp.{host}", "TLSA", [EE])
    found = tlsa(host, 25, resolver, deadline())
    assert found.state == "insecure"
    assert found.records == ()
    assert "not DNSSEC-signed" in found.error


def test_bogus_tlsa_records_are_bogus(dnssec: SignedDNSServer, resolver, fresh: str):
    host = f"mx.{fresh}.example.test"
    dnssec.add(host, "A", ["127.0.0.2"])
    dnssec.add(f"_25._tcp.{host}", "TLSA", [EE])
    dnssec.break_signatures(f"_25._tcp.{host}")
    found = tlsa(host, 25, resolver, deadline())
    assert found.state == "bogus"
    assert "cannot be validated" in found.error and "SERVFAIL" in found.error


def test_bogus_address_records_are_bogus(dnssec: SignedDNSServer, resolver, fresh: str):
    host = f"mx.{fresh}.example.test"
    dnssec.add(host, "A", ["127.0.0.2"])
    dnssec.break_signatures(host)
    assert tlsa(host, 25, resolver, deadline()).state == "bogus"


def test_a_signed_cname_makes_the_target_the_tlsa_base(
    dnssec: SignedDNSServer, resolver, fresh: str
):
    alias, target = f"mx.{fresh}.example.test", f"real.{fresh}.example.test"
    dnssec.add(alias, "CNAME", [f"{target}."])
    dnssec.add(target, "A", ["127.0.0.2"])
    dnssec.add(f"_25._tcp.{target}", "TLSA", [EE])
    found = tlsa(alias, 25, resolver, deadline())
    assert (found.state, found.base) == ("secure", target)
    assert found.names == (target, alias)


def test_a_cname_target_without_tlsa_falls_back_to_the_alias(
    dnssec: SignedDNSServer, resolver, fresh: str
):
    alias, target = f"mx.{fresh}.example.test", f"real.{fresh}.example.test"
    dnssec.add(alias, "CNAME", [f"{target}."])
    dnssec.add(target, "A", ["127.0.0.2"])
    dnssec.add(f"_25._tcp.{alias}", "TLSA", [EE])
    found = tlsa(alias, 25, resolver, deadline())
    assert (found.state, found.base) == ("secure", alias)


def test_a_cname_into_an_unsigned_zone_does_not_apply(
    dnssec: SignedDNSServer, resolver, fresh: str
):
    alias, target = f"mx.{fresh}.example.test", f"mx.{fresh}.plain.test"
    dnssec.add(alias, "CNAME", [f"{target}."])
    dnssec.add(target, "A", ["127.0.0.2"])
    dnssec.add(f"_25._tcp.{alias}", "TLSA", [EE])
    assert tlsa(alias, 25, resolver, deadline()).state == "insecure"


def test_tlsa_uses_the_port_in_the_owner_name(dnssec: SignedDNSServer, resolver, fresh: str):
    host = f"mx.{fresh}.example.test"
    dnssec.add(host, "A", ["127.0.0.2"])
    dnssec.add(f"_2525._tcp.{host}", "TLSA", [EE])
    assert tlsa(host, 2525, resolver, deadline()).state == "secure"
    assert tlsa(host, 25, resolver, deadline()).state == "none"


def test_txt_joins_the_strings_of_one_record(dnssec: SignedDNSServer, resolver, fresh: str):
    name = f"_mta-sts.{fresh}.example.test"
    dnssec.add(name, "TXT", ['"v=STSv1; " "id=20240101"'])
    answer = txt(resolver, name, deadline())
    assert answer.records == ("v=STSv1; id=20240101",)
    assert answer.secure


def test_a_timeout_is_an_error_not_a_verdict(dnssec: SignedDNSServer, resolver, fresh: str):
    host = f"mx.{fresh}.example.test"
    expired = Deadline(0)
    found = tlsa(host, 25, resolver, expired)
    assert found.state == "error"
    assert "timeout" in found.error


def test_an_answer_too_big_for_udp_arrives_whole_over_tcp(
    dnssec: SignedDNSServer, resolver, fresh: str
):
    host = f"mx.{fresh}.example.test"
    dnssec.add(host, "A", ["127.0.0.2"])
    texts = [f"3 1 2 {n:02x}" + "cd" * 63 for n in range(30)]  # ~2.5 KB with signatures
    dnssec.add(f"_25._tcp.{host}", "TLSA", texts)
    found = tlsa(host, 25, resolver, deadline())
    assert found.state == "secure"
    assert sorted(str(r) for r in found.records) == sorted(texts)
