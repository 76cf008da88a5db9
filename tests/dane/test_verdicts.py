"""The outcomes issue 13 lists, from what DNS, the policy host and the MX hosts said."""

from __future__ import annotations

import pytest

from check_smtp_verbs import dane, mta_sts, tlsrpt
from check_smtp_verbs.core.dns import TlsaLookup, TlsaRecord
from check_smtp_verbs.mta_sts import HostTls, MtaSts, Policy, StsTxt
from tests.dane.certificates import issue_chain, tlsa_text

HOST = "mx1.example.test"


def record(text: str) -> TlsaRecord:
    usage, selector, mtype, data = text.split()
    return TlsaRecord(int(usage), int(selector), int(mtype), bytes.fromhex(data))


def secure(*records: TlsaRecord) -> TlsaLookup:
    return TlsaLookup(HOST, 25, HOST, "secure", records, (HOST,))


# -- DANE --------------------------------------------------------------------------


def test_dane_match_is_ok_and_names_the_record():
    chain = issue_chain(HOST)
    pin = record(tlsa_text(chain.leaf, 3, 1, 1))
    verdict = dane.judge(secure(pin), chain.presented)
    assert verdict.state == "ok"
    assert verdict.text.startswith(f"DANE: TLSA 3 1 1 {pin.data.hex()[:12]}… matches")
    assert verdict.result.matched == pin


def test_dane_no_match_is_critical_and_says_senders_will_not_deliver():
    chain = issue_chain(HOST)
    stale = record(tlsa_text(issue_chain(HOST).leaf, 3, 1, 1))
    verdict = dane.judge(secure(stale), chain.presented)
    assert verdict.state == "critical"
    assert verdict.text.endswith("senders that validate will not deliver")


def test_dane_only_pkix_records_is_critical():
    chain = issue_chain(HOST)
    verdict = dane.judge(secure(record(tlsa_text(chain.leaf, 1, 1, 1))), chain.presented)
    assert verdict.state == "critical"
    assert "none of the 1 TLSA record(s) is usable for SMTP" in verdict.text


def test_dane_without_tls_while_tlsa_is_published_is_critical():
    verdict = dane.judge(
        secure(record("3 1 1 " + "00" * 32)), None, tls_error="STARTTLS not offered"
    )
    assert verdict.state == "critical"
    assert f"TLSA published at _25._tcp.{HOST} but STARTTLS not offered" in verdict.text


def test_dane_bogus_is_critical():
    found = TlsaLookup(HOST, 25, HOST, "bogus", error="the TLSA records ... fail DNSSEC")
    verdict = dane.judge(found, [])
    assert verdict.state == "critical" and "senders that validate" in verdict.text


@pytest.mark.parametrize("state", ["none", "insecure"])
def test_dane_not_published_is_ok_with_a_note_or_critical_when_required(state: str):
    found = TlsaLookup(HOST, 25, HOST, state, error="no TLSA records at _25._tcp." + HOST)
    assert dane.judge(found, []).state == "ok"
    required = dane.judge(found, [], required=True)
    assert required.state == "critical" and required.text.endswith("(--dane=required)")


def test_dane_lookup_error_is_unknown():
    found = TlsaLookup(HOST, 25, HOST, "error", error="timeout after 10s")
    assert dane.judge(found, []).state == "unknown"


# -- MTA-STS ------------------------------------------------------------------------

DOMAIN = "example.test"


def published(mode: str, *mx: str) -> MtaSts:
    return MtaSts(DOMAIN, "ok", StsTxt("present", "1"), Policy("STSv1", mode, 86400 * 7, mx))


GOOD = [HostTls("mx1.example.test", True), HostTls("mx2.example.test", True)]


def test_mta_sts_all_covered_with_valid_tls_is_ok():
    verdict = mta_sts.judge(published("enforce", "*.example.test"), GOOD)
    assert verdict == mta_sts.Verdict(
        "ok",
        "MTA-STS example.test: mode enforce, 2 MX host(s) covered with valid TLS, max_age 7 days",
    )


@pytest.mark.parametrize(("mode", "state"), [("enforce", "critical"), ("testing", "warning")])
def test_an_uncovered_mx_host_is_named(mode: str, state: str):
    verdict = mta_sts.judge(published(mode, "mx1.example.test"), GOOD)
    assert verdict.state == state
    assert verdict.problems == ("mx2.example.test is not covered by mx: mx1.example.test",)


@pytest.mark.parametrize(("mode", "state"), [("enforce", "critical"), ("testing", "warning")])
def test_an_mx_host_failing_tls_is_named(mode: str, state: str):
    hosts = [
        HostTls("mx1.example.test", False, error="STARTTLS not offered"),
        HostTls("mx2.example.test", True, pkix_error="certificate has expired"),
    ]
    verdict = mta_sts.judge(published(mode, "*.example.test"), hosts)
    assert verdict.state == state
    assert verdict.problems == (
        "mx1.example.test has no TLS: STARTTLS not offered",
        "mx2.example.test: certificate not valid: certificate has expired",
    )


def test_policy_mode_none_is_ok_unless_required():
    assert mta_sts.judge(published("none"), GOOD).state == "ok"
    assert mta_sts.judge(published("none"), GOOD, required=True).state == "critical"


def test_txt_without_a_usable_policy_is_critical():
    found = MtaSts(DOMAIN, "failed", StsTxt("present", "1"), error="certificate has expired")
    verdict = mta_sts.judge(found, GOOD)
    assert verdict.state == "critical"
    assert verdict.text.endswith("senders keep a cached policy and may refuse mail")


def test_no_txt_is_ok_with_a_note_or_critical_when_required():
    found = MtaSts(DOMAIN, "none", error="no MTA-STS TXT record at _mta-sts.example.test")
    assert mta_sts.judge(found, GOOD).state == "ok"
    assert mta_sts.judge(found, GOOD, required=True).state == "critical"


def test_a_malformed_txt_is_a_warning():
    found = MtaSts(DOMAIN, "malformed", error="TXT _mta-sts.example.test: no id=")
    assert mta_sts.judge(found, GOOD).state == "warning"


# -- TLS-RPT ------------------------------------------------------------------------


def test_tlsrpt_malformed_is_a_warning_and_absent_is_fine():
    assert tlsrpt.judge(tlsrpt.parse(DOMAIN, ["v=TLSRPTv1;"]))[0] == "warning"
    assert tlsrpt.judge(tlsrpt.parse(DOMAIN, []))[0] == "ok"
    state, text = tlsrpt.judge(tlsrpt.parse(DOMAIN, ["v=TLSRPTv1; rua=mailto:a@example.test"]))
    assert (state, text) == ("ok", "TLS-RPT example.test: reports to mailto:a@example.test")
