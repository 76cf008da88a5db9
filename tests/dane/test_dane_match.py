"""Matching a presented certificate chain against TLSA records as RFC 7672 says for SMTP."""

from __future__ import annotations

import datetime
import socket
import ssl
import threading

import pytest

from check_smtp_verbs.core.dns import TlsaRecord
from check_smtp_verbs.dane import match, name_matches, presented_chain
from tests.dane.certificates import Chain, issue_chain, self_signed, tlsa_text

HOST = "mx1.example.test"


def record(text: str) -> TlsaRecord:
    usage, selector, mtype, data = text.split()
    return TlsaRecord(int(usage), int(selector), int(mtype), bytes.fromhex(data))


@pytest.fixture(scope="module")
def chain() -> Chain:
    return issue_chain(HOST)


def handshake(context: ssl.SSLContext) -> list[bytes]:
    """The chain a real TLS server with ``context`` presents to a client that does not
    verify, as the DANE check sees it."""
    listener = socket.create_server(("127.0.0.1", 0))
    errors: list[BaseException] = []

    def serve() -> None:
        try:
            connection, _ = listener.accept()
            with context.wrap_socket(connection, server_side=True) as tls:
                tls.recv(1)
        except (OSError, ssl.SSLError) as error:
            errors.append(error)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    client = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    client.check_hostname = False
    client.verify_mode = ssl.CERT_NONE
    with (
        socket.create_connection(listener.getsockname(), timeout=5) as raw,
        client.wrap_socket(raw, server_hostname=HOST) as tls,
    ):
        chain = presented_chain(tls)
    thread.join(5)
    listener.close()
    return chain


def test_presented_chain_has_the_intermediate_not_just_the_leaf(chain: Chain):
    assert handshake(chain.context) == [chain.leaf, chain.intermediate]


@pytest.mark.parametrize("selector", [0, 1])
@pytest.mark.parametrize("mtype", [0, 1, 2])
def test_dane_ee_matches_the_leaf_by_every_selector_and_matching_type(
    chain: Chain, selector: int, mtype: int
):
    pin = record(tlsa_text(chain.leaf, 3, selector, mtype))
    result = match([pin], chain.presented, [HOST])
    assert result.ok and result.matched == pin
    assert result.summary().startswith(f"TLSA 3 {selector} {mtype} ")


def test_dane_ee_ignores_names_and_dates():
    der, _ = self_signed("some-other-name.invalid", days_left=-10)
    result = match([record(tlsa_text(der, 3, 1, 1))], [der], [HOST])
    assert result.ok
    assert "DANE-EE" in result.summary()


def test_a_stale_dane_ee_record_after_a_certificate_change_does_not_match(chain: Chain):
    renewed = issue_chain(HOST)
    stale = record(tlsa_text(chain.leaf, 3, 1, 1))
    result = match([stale], renewed.presented, [HOST])
    assert result.state == "mismatch" and not result.ok
    assert "matches none of the 1 usable TLSA record(s)" in result.summary()
    assert "DANE-EE: not the server's public key" in result.summary()


def test_one_matching_record_among_stale_ones_is_enough(chain: Chain):
    stale = record(tlsa_text(issue_chain(HOST).leaf, 3, 1, 1))
    fresh = record(tlsa_text(chain.leaf, 3, 1, 1))
    result = match([stale, fresh], chain.presented, [HOST])
    assert result.matched == fresh
    assert [v.state for v in result.verdicts] == ["mismatch", "match"]


@pytest.mark.parametrize("selector", [0, 1])
def test_dane_ta_matches_the_presented_intermediate(chain: Chain, selector: int):
    pin = record(tlsa_text(chain.intermediate, 2, selector, 1))
    result = match([pin], chain.presented, [HOST])
    assert result.ok
    assert result.verdicts[0].depth == 1
    assert "DANE-TA: issued under" in result.summary()


def test_dane_ta_matches_a_presented_root():
    chain = issue_chain(HOST, send_root=True)
    result = match([record(tlsa_text(chain.root, 2, 0, 1))], chain.presented, [HOST])
    assert result.ok and result.verdicts[0].depth == 2


def test_dane_ta_for_a_root_the_server_does_not_send_cannot_match(chain: Chain):
    result = match([record(tlsa_text(chain.root, 2, 1, 1))], chain.presented, [HOST])
    assert result.state == "mismatch"
    assert "no presented CA certificate matches" in result.summary()


def test_dane_ta_checks_the_name_against_the_mx_host(chain: Chain):
    pin = record(tlsa_text(chain.intermediate, 2, 1, 1))
    result = match([pin], chain.presented, ["mx2.example.test"])
    assert result.state == "mismatch"
    assert "the certificate is not for mx2.example.test" in result.summary()


def test_dane_ta_accepts_the_cname_expanded_name_too():
    chain = issue_chain("real.example.test")
    pin = record(tlsa_text(chain.intermediate, 2, 1, 1))
    assert match([pin], chain.presented, ["real.example.test", HOST]).ok


def test_dane_ta_rejects_an_expired_leaf():
    chain = issue_chain(HOST, days_left=-1)
    result = match([record(tlsa_text(chain.intermediate, 2, 1, 1))], chain.presented, [HOST])
    assert result.state == "mismatch"
    assert f"CN={HOST}" in result.summary() or "expired on" in result.summary()
    assert "expired on" in result.summary()


def test_dane_ta_rejects_a_leaf_not_signed_by_the_anchor(chain: Chain):
    other = issue_chain(HOST)
    mixed = [other.leaf, chain.intermediate]  # a leaf from elsewhere, our intermediate
    result = match([record(tlsa_text(chain.intermediate, 2, 1, 1))], mixed, [HOST])
    assert result.state == "mismatch"
    assert "the chain does not lead to" in result.summary()


def test_dane_ta_finds_the_issuer_in_a_misordered_chain():
    chain = issue_chain(HOST, send_root=True)
    shuffled = [chain.leaf, chain.root, chain.intermediate]
    assert match([record(tlsa_text(chain.root, 2, 0, 1))], shuffled, [HOST]).ok


def test_dane_ta_does_not_match_the_leaf_itself(chain: Chain):
    result = match([record(tlsa_text(chain.leaf, 2, 1, 1))], chain.presented, [HOST])
    assert result.state == "mismatch"


@pytest.mark.parametrize("usage", [0, 1])
def test_pkix_usages_are_unusable_for_smtp(chain: Chain, usage: int):
    result = match([record(tlsa_text(chain.leaf, usage, 1, 1))], chain.presented, [HOST])
    assert result.state == "unusable" and not result.ok
    assert "is not for SMTP (RFC 7672 3.1.3)" in result.summary()


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("4 1 1 " + "00" * 32, "unknown certificate usage 4"),
        ("3 2 1 " + "00" * 32, "unknown selector 2"),
        ("3 1 3 " + "00" * 32, "unknown matching type 3"),
        ("3 1 1 " + "00" * 31, "a SHA2-256 digest of 31 bytes"),
        ("3 1 2 " + "00" * 32, "a SHA2-512 digest of 32 bytes"),
    ],
)
def test_malformed_records_are_unusable_and_say_why(chain: Chain, text: str, reason: str):
    result = match([record(text)], chain.presented, [HOST])
    assert result.state == "unusable"
    assert reason in result.summary()


def test_an_unusable_record_beside_a_matching_one_does_no_harm(chain: Chain):
    pkix = record(tlsa_text(chain.leaf, 1, 1, 1))
    good = record(tlsa_text(chain.leaf, 3, 1, 1))
    result = match([pkix, good], chain.presented, [HOST])
    assert result.ok and [v.state for v in result.verdicts] == ["unusable", "match"]


def test_dane_ee_is_preferred_when_both_usages_match(chain: Chain):
    ta = record(tlsa_text(chain.intermediate, 2, 1, 1))
    ee = record(tlsa_text(chain.leaf, 3, 1, 1))
    assert match([ta, ee], chain.presented, [HOST]).matched == ee


def test_no_presented_certificate_matches_nothing(chain: Chain):
    result = match([record(tlsa_text(chain.leaf, 3, 1, 1))], [], [HOST])
    assert result.state == "mismatch"
    assert "no certificate was presented" in result.summary()


def test_the_check_time_decides_dane_ta_dates(chain: Chain):
    pin = record(tlsa_text(chain.intermediate, 2, 1, 1))
    later = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(days=365)
    assert not match([pin], chain.presented, [HOST], now=later).ok


@pytest.mark.parametrize(
    ("pattern", "name", "expected"),
    [
        ("mx1.example.test", "MX1.Example.Test.", True),
        ("*.example.test", "mx1.example.test", True),
        ("*.example.test", "a.mx1.example.test", False),
        ("*.example.test", "example.test", False),
        ("mx*.example.test", "mx1.example.test", False),
        ("*.test", "example.test", False),
    ],
)
def test_names_match_with_a_wildcard_only_as_the_whole_left_most_label(
    pattern: str, name: str, expected: bool
):
    assert name_matches(pattern, name) is expected
