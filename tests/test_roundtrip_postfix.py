"""The whole chain: SMTP into the private Postfix, LMTP into the private Dovecot, IMAP/POP3 out.

These tests drive the mailbox side (check_smtp_verbs.roundtrip) directly; the SMTP side
here is smtplib, standing in for the check.  They prove what the round trip stands on:
Postfix really hands the probe to Dovecot, a held message is not in the mailbox, and
its late delivery is measured as late.
"""

from __future__ import annotations

import smtplib
import threading
from collections.abc import Iterator

import pytest

from check_smtp_verbs.core.deadline import Deadline, clock
from check_smtp_verbs.core.transcript import Transcript
from check_smtp_verbs.roundtrip import imap, pop3
from check_smtp_verbs.roundtrip.connection import client_context
from check_smtp_verbs.roundtrip.url import parse
from tests.dovecot import DOMAIN, PROBE_USER, USERS, PrivateDovecot
from tests.postfix import PrivatePostfix
from tests.test_roundtrip_mailbox import probe_message

pytestmark = pytest.mark.postfix


@pytest.fixture(scope="module")
def lmtp_route(postfix: PrivatePostfix, dovecot: PrivateDovecot) -> Iterator[PrivatePostfix]:
    """The session's Postfix delivering roundtrip.test to Dovecot over LMTP, for this module."""
    postfix.deliver_over_lmtp(DOMAIN, dovecot.host, dovecot.ports.lmtp)
    yield postfix
    postfix.stop_delivering_over_lmtp(DOMAIN)


@pytest.fixture
def chain(lmtp_route: PrivatePostfix, dovecot: PrivateDovecot) -> Iterator[PrivatePostfix]:
    """Postfix to Dovecot, with an empty mailbox before and after the test."""
    dovecot.empty(PROBE_USER)
    yield lmtp_route
    dovecot.empty(PROBE_USER)


def send(postfix: PrivatePostfix, raw: bytes) -> float:
    """Submit like the check does; returns the clock at the end of DATA."""
    with smtplib.SMTP(postfix.host, postfix.port, local_hostname="client.test") as smtp:
        smtp.sendmail("probe@verbs.test", [PROBE_USER], raw)
        return clock()


def visit(dovecot: PrivateDovecot, scheme: str, wanted: set[str], seconds: float):
    url = parse(dovecot.url(scheme), scheme.rstrip("s"))
    client = imap if url.protocol == "imap" else pop3
    return client.visit(
        url,
        PROBE_USER,
        USERS[PROBE_USER],
        wanted,
        Deadline(seconds),
        Transcript(),
        client_context(str(dovecot.ca_file)),
    )


@pytest.mark.parametrize("scheme", ["imaps", "pop3s"])
def test_a_probe_accepted_by_postfix_reaches_the_dovecot_mailbox(chain, dovecot, scheme):
    raw, message_id = probe_message()
    sent = send(chain, raw)
    report = visit(dovecot, scheme, {message_id}, seconds=10)
    assert message_id in report.found
    assert 0 < report.found[message_id].seen - sent < 5
    assert dovecot.maildir_messages() == []
    assert f"to=<{PROBE_USER}>, relay=" in chain.wait_for_log(r"status=sent.*").string


def test_a_held_probe_is_not_in_the_mailbox_before_the_deadline(chain, dovecot):
    chain.hold_incoming()
    try:
        raw, message_id = probe_message()
        send(chain, raw)
        report = visit(dovecot, "imaps", {message_id}, seconds=1.5)
        assert report.found == {}
        assert len(chain.held()) == 1
    finally:
        chain.hold_incoming(False)
        chain.release_held()
    assert visit(dovecot, "imaps", {message_id}, seconds=10).found  # cleaned up


def test_a_probe_released_late_is_measured_late(chain, dovecot):
    chain.hold_incoming()
    try:
        raw, message_id = probe_message()
        sent = send(chain, raw)
        timer = threading.Timer(2.0, chain.release_held)
        timer.start()
        report = visit(dovecot, "imaps", {message_id}, seconds=10)
        timer.join()
    finally:
        chain.hold_incoming(False)
    assert message_id in report.found
    assert report.method == "IDLE"
    assert 2.0 < report.found[message_id].seen - sent < 4.5
    assert chain.held() == []
