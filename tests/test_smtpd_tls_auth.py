"""The test server's STARTTLS, implicit TLS and AUTH, checked with smtplib as the client.

The plugin's TLS and AUTH tests trust this server to speak TLS and to check
credentials for real; these tests earn that trust with an independent client.
"""

from __future__ import annotations

import smtplib
import socket
import ssl

import pytest

MECHANISMS = ["PLAIN", "LOGIN", "CRAM-MD5", "XOAUTH2"]


def client_context(certs) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(certs.ca_file))


def test_ehlo_offers_starttls_only_before_tls_and_auth_always(smtp_server, certs):
    server = smtp_server(tls_context=certs.context(), auth_mechanisms=["PLAIN", "LOGIN"])
    with smtplib.SMTP(server.host, server.port, timeout=5) as smtp:
        smtp.ehlo("client.test")
        assert smtp.has_extn("starttls")
        assert smtp.esmtp_features["auth"].split() == ["PLAIN", "LOGIN"]
        smtp._host = "smtpd.test"
        code, _ = smtp.starttls(context=client_context(certs))
        assert code == 220
        smtp.ehlo("client.test")
        assert not smtp.has_extn("starttls")
        assert smtp.has_extn("auth")
    assert server.tls_versions == ["TLSv1.3"]


def test_without_a_tls_context_starttls_keeps_its_scripted_454(smtp_server):
    server = smtp_server()
    with smtplib.SMTP(server.host, server.port, timeout=5) as smtp:
        smtp.ehlo("client.test")
        assert not smtp.has_extn("starttls")
        assert smtp.docmd("STARTTLS")[0] == 454


def test_implicit_tls_handshakes_before_the_banner(smtp_server, certs):
    server = smtp_server(tls_context=certs.context(), implicit_tls=True)
    with smtplib.SMTP_SSL(
        server.host, server.port, timeout=5, context=client_context(certs)
    ) as smtp:
        assert smtp.noop()[0] == 250
    assert server.tls_versions == ["TLSv1.3"]


@pytest.mark.parametrize("fault", ["hang", "reset"])
def test_tls_faults_never_complete_a_handshake(smtp_server, certs, fault):
    server = smtp_server(tls_context=certs.context(), implicit_tls=True, tls_fault=fault)
    with (
        socket.create_connection((server.host, server.port), timeout=0.5) as raw,
        pytest.raises((socket.timeout, ConnectionError, ssl.SSLError)),
    ):
        client_context(certs).wrap_socket(raw, server_hostname="smtpd.test")
    assert server.tls_versions == []


@pytest.mark.parametrize("mechanism", ["PLAIN", "LOGIN", "CRAM-MD5"])
def test_auth_accepts_right_and_rejects_wrong_credentials(smtp_server, mechanism):
    server = smtp_server(auth_mechanisms=MECHANISMS, users={"alice": "right"})
    method = {"PLAIN": "auth_plain", "LOGIN": "auth_login", "CRAM-MD5": "auth_cram_md5"}
    for password, expected in (("right", 235), ("wrong", 535)):
        with smtplib.SMTP(server.host, server.port, timeout=5) as smtp:
            smtp.ehlo("client.test")
            smtp.user, smtp.password = "alice", password
            authobject = getattr(smtp, method[mechanism])
            try:
                code = smtp.auth(mechanism, authobject, initial_response_ok=False)[0]
            except smtplib.SMTPAuthenticationError as error:
                code = error.smtp_code
            assert code == expected, (password, code)


def test_xoauth2_answers_a_bad_token_with_a_334_error_then_535(smtp_server):
    import base64

    server = smtp_server(auth_mechanisms=["XOAUTH2"], users={"alice": "token"})
    with smtplib.SMTP(server.host, server.port, timeout=5) as smtp:
        smtp.ehlo("client.test")
        bad = base64.b64encode(b"user=alice\x01auth=Bearer nope\x01\x01").decode()
        code, message = smtp.docmd("AUTH", f"XOAUTH2 {bad}")
        assert code == 334 and b"401" in base64.b64decode(message)
        assert smtp.docmd("")[0] == 535
        good = base64.b64encode(b"user=alice\x01auth=Bearer token\x01\x01").decode()
        assert smtp.docmd("AUTH", f"XOAUTH2 {good}")[0] == 235


def test_unknown_mechanism_and_cancel(smtp_server):
    server = smtp_server(auth_mechanisms=["LOGIN"], users={"alice": "right"})
    with smtplib.SMTP(server.host, server.port, timeout=5) as smtp:
        smtp.ehlo("client.test")
        assert smtp.docmd("AUTH", "NTLM")[0] == 504
        assert smtp.docmd("AUTH", "LOGIN")[0] == 334
        assert smtp.docmd("*")[0] == 501
