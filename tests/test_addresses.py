"""What may reach the wire: addresses, HELO names and host names."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from check_smtp_verbs.addresses import InvalidInput, helo_name, hostname, mailbox


@pytest.mark.parametrize(
    "good",
    [
        "postmaster@example.net",
        "a.b+tag@sub.example.net",
        '"odd local"@example.net',
        "postmaster",
        "user@[192.0.2.1]",
        "<probe@example.net>",
    ],
)
def test_valid_mailboxes_are_accepted(good):
    assert mailbox(good, "--rcpt") == good.strip("<>")


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "no-at-sign",
        "a@",
        "@b",
        "a@b@c",
        "a b@c",
        "a@-bad-.net",
        "a..b@c",
        "x" * 65 + "@e.n",
        "x@" + "e" * 260,
    ],
)
def test_invalid_mailboxes_are_refused(bad):
    with pytest.raises(InvalidInput):
        mailbox(bad, "--rcpt")


def test_null_sender_only_where_allowed():
    assert mailbox("", "--from", allow_null=True) == ""
    assert mailbox("<>", "--from", allow_null=True) == ""
    with pytest.raises(InvalidInput, match="must not be empty"):
        mailbox("", "--rcpt")


@given(st.text(max_size=20), st.sampled_from(["\r", "\n", "\x00", "\r\n"]), st.text(max_size=20))
def test_no_control_character_ever_passes_any_validator(head, control, tail):
    value = head + control + tail
    for check in (lambda v: mailbox(v, "--rcpt"), helo_name, hostname):
        with pytest.raises(InvalidInput):
            check(value)


def test_helo_name_is_a_domain_or_literal():
    assert helo_name("probe.example.net") == "probe.example.net"
    assert helo_name("[192.0.2.1]") == "[192.0.2.1]"
    with pytest.raises(InvalidInput):
        helo_name("two words")


def test_hostname_accepts_names_and_ip_literals():
    assert hostname("mx.example.net") == "mx.example.net"
    assert hostname("127.0.0.1") == "127.0.0.1"
    assert hostname("[::1]") == "::1"
    with pytest.raises(InvalidInput):
        hostname("bad host")
