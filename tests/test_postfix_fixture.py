"""The private Postfix behaves as the integration tests rely on, and cleans up after itself."""

from __future__ import annotations

import smtplib
import socket
import uuid

import pytest

from tests.postfix import PrivatePostfix, instance_processes

pytestmark = pytest.mark.postfix


def client(postfix: PrivatePostfix) -> smtplib.SMTP:
    return smtplib.SMTP(postfix.host, postfix.port, timeout=10)


def banner(postfix: PrivatePostfix) -> bytes:
    with socket.create_connection((postfix.host, postfix.port), timeout=10) as sock:
        return sock.makefile("rb").readline()


def test_listens_on_a_private_loopback_port_with_its_own_name(postfix: PrivatePostfix) -> None:
    assert postfix.host == "127.0.0.1"
    assert postfix.port not in (25, 465, 587)
    assert banner(postfix).startswith(b"220 postfix.verbs.test ESMTP")


def test_uses_only_its_own_configuration(postfix: PrivatePostfix) -> None:
    assert postfix.config_dir.parent == postfix.base_dir
    assert postfix.setting("queue_directory").startswith(str(postfix.base_dir))
    assert postfix.setting("default_transport") == "error:"
    assert postfix.setting("mynetworks") == "192.0.2.1/32"


@pytest.mark.parametrize(
    ("recipient", "code", "status"),
    [
        ("postmaster@verbs.test", 250, b"2.1.5"),
        ("probe@verbs.test", 250, b"2.1.5"),
        ("nosuchuser@verbs.test", 550, b"5.1.1"),
        ("tempfail@verbs.test", 451, b"4.3.0"),
        ("someone@example.org", 554, b"5.7.1"),
    ],
)
def test_rcpt_answers(postfix: PrivatePostfix, recipient: str, code: int, status: bytes) -> None:
    with client(postfix) as smtp:
        assert smtp.mail("sender@example.net")[0] == 250
        reply_code, text = smtp.rcpt(recipient)
    assert (reply_code, text.split()[0]) == (code, status)


def test_message_sent_with_data_lands_in_the_maildir(postfix: PrivatePostfix) -> None:
    subject = f"fixture test {uuid.uuid4()}"
    before = len(postfix.delivered("postmaster"))  # the Postfix is shared by the session
    with client(postfix) as smtp:
        smtp.sendmail(
            "sender@example.net", ["postmaster@verbs.test"], f"Subject: {subject}\r\n\r\nhi\r\n"
        )
    delivered = postfix.wait_for_delivery("postmaster", count=before + 1)
    assert any(subject.encode() in message for message in delivered)
    assert postfix.wait_for_log(r"to=<postmaster@verbs\.test>, relay=virtual, .*status=sent")


def test_delivered_is_empty_for_a_user_without_mail(postfix: PrivatePostfix) -> None:
    assert postfix.delivered("nobody-here") == []


def test_maillog_shows_the_sessions(postfix: PrivatePostfix) -> None:
    with client(postfix) as smtp:
        smtp.ehlo("maillog.test")
    assert postfix.wait_for_log(r"disconnect from unknown\[127\.0\.0\.1\] ehlo=1 quit=1")


def test_postconf_and_reload_reach_new_connections(postfix: PrivatePostfix) -> None:
    postfix.postconf(smtpd_banner="$myhostname ESMTP reloaded")
    try:
        postfix.reload()
        assert banner(postfix) == b"220 postfix.verbs.test ESMTP reloaded\r\n"
    finally:
        postfix.postconf(smtpd_banner="$myhostname ESMTP $mail_name")
        postfix.reload()
    assert banner(postfix) == b"220 postfix.verbs.test ESMTP Postfix\r\n"


def test_second_instance_runs_beside_the_first_and_stop_leaves_nothing(
    postfix: PrivatePostfix,
) -> None:
    with PrivatePostfix() as second:
        assert second.port != postfix.port
        assert second.config_dir != postfix.config_dir
        assert banner(second).startswith(b"220 ")
        assert banner(postfix).startswith(b"220 ")
        base_dir, config_dir = second.base_dir, second.config_dir
        assert instance_processes(config_dir)
    assert instance_processes(config_dir) == []
    assert base_dir is not None and not base_dir.exists()
    assert banner(postfix).startswith(b"220 ")
