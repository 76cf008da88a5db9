"""--imap and --pop3 URLs: what is understood, and a one-line reason for what is not."""

from __future__ import annotations

import pytest

from check_smtp_verbs.roundtrip.url import MailboxURL, parse


@pytest.mark.parametrize(
    ("text", "protocol", "expected"),
    [
        ("imaps://mail.example.net", "imap", ("imap", "imaps", "mail.example.net", 993, True)),
        ("imap://mail.example.net", "imap", ("imap", "imap", "mail.example.net", 143, False)),
        ("IMAP://Mail.Example.NET:1143/", "imap", ("imap", "imap", "mail.example.net", 1143, 0)),
        ("imaps://[::1]:9993", "imap", ("imap", "imaps", "::1", 9993, True)),
        ("pop3s://192.0.2.7", "pop3", ("pop3", "pop3s", "192.0.2.7", 995, True)),
        ("pop3://pop.example.net", "pop3", ("pop3", "pop3", "pop.example.net", 110, False)),
    ],
)
def test_understood_urls(text, protocol, expected):
    assert tuple(parse(text, protocol)) == expected


def test_the_url_is_shown_with_its_port():
    assert str(MailboxURL("imap", "imaps", "::1", 993, True)) == "imaps://[::1]:993"
    assert str(parse("pop3://pop.example.net", "pop3")) == "pop3://pop.example.net:110"


@pytest.mark.parametrize(
    ("text", "protocol", "reason"),
    [
        ("", "imap", "is not a URL"),
        ("imap://host\r\nA1 LOGOUT", "imap", "control characters"),
        ("imap://host name", "imap", "spaces"),
        ("pop3://mail.example.net", "imap", "does not start with imap:// or imaps://"),
        ("https://mail.example.net", "pop3", "does not start with pop3:// or pop3s://"),
        ("mail.example.net", "imap", "does not start with imap://"),
        ("imap://user@mail.example.net", "imap", "give the user with its own option"),
        ("imaps://", "imap", "names no host"),
        ("imap://mail.example.net/Probes", "imap", "the folder has its own option"),
        ("imap://mail.example.net?x=1", "imap", "only imap://host[:port] is understood"),
        ("imap://mail.example.net:99999", "imap", "Port out of range"),
        ("imap://mail.example.net:0", "imap", "port 0 is not a port"),
        ("imap://mail.example.net:imap", "imap", "is not a usable URL"),
        ("imap://mail_box.example.net", "imap", "is not a host name or address"),
    ],
)
def test_refused_urls_say_why_in_one_line(text, protocol, reason):
    with pytest.raises(ValueError) as refused:
        parse(text, protocol)
    assert reason in str(refused.value)
    assert "\n" not in str(refused.value) and "\r" not in str(refused.value)


def test_a_password_in_the_url_is_never_repeated():
    with pytest.raises(ValueError) as refused:
        parse("imaps://probe:Sekr3t@mail.example.net", "imap")
    assert "Sekr3t" not in str(refused.value)
