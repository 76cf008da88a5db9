"""The rules of the must-refuse checks (check_smtp_verbs.refusals), case by case.

Here a refusal is the good answer: 5xx to a relay test or to MAIL FROM before
STARTTLS is OK, acceptance is CRITICAL.  The servers that give these answers for
real are in test_relay_servers.py and the plugin tests.
"""

from __future__ import annotations

import smtplib
import ssl

import pytest

from check_smtp_verbs.refusals import (
    VersionError,
    limit_to_version,
    parse_tls_versions,
    plaintext_auth_problem,
    relay_verdict,
    starttls_required_verdict,
)
from tests.smtpd import limit_tls_versions


def test_plaintext_auth_names_every_mechanism_offered_once():
    offered = ["PLAIN", "LOGIN", "cram-md5", "PLAIN"]
    assert plaintext_auth_problem(offered) == "AUTH offered before TLS: PLAIN LOGIN CRAM-MD5"
    assert plaintext_auth_problem([]) is None


@pytest.mark.parametrize(
    ("code", "state", "text"),
    [
        (250, "critical", "open relay: RCPT TO:<x@relay.test> accepted (250)"),
        (251, "critical", "open relay: RCPT TO:<x@relay.test> accepted (251)"),
        (451, "warning", "relay test RCPT TO:<x@relay.test> answered 451 (temporary)"),
        (554, "ok", "relay refused: RCPT TO:<x@relay.test> answered 554"),
        (None, "unknown", "RCPT TO:<x@relay.test>: no reply"),
    ],
)
def test_relay_test_is_ok_only_when_refused_for_good(code, state, text):
    assert relay_verdict("RCPT TO:<x@relay.test>", code) == (state, text)


def test_a_temporary_relay_refusal_takes_the_state_the_user_chose():
    assert relay_verdict("RCPT TO:<x@relay.test>", 450, "critical").state == "critical"
    assert relay_verdict("RCPT TO:<x@relay.test>", 450, "ok").state == "ok"


@pytest.mark.parametrize(
    ("code", "state"), [(530, "ok"), (554, "ok"), (250, "critical"), (454, "warning")]
)
def test_mail_before_starttls_must_be_refused_for_good(code, state):
    assert starttls_required_verdict(code).state == state


def test_mail_accepted_before_starttls_says_so():
    assert starttls_required_verdict(250).text == (
        "accepts mail before STARTTLS (MAIL FROM answered 250)"
    )


@pytest.mark.parametrize(
    ("text", "versions"),
    [
        ("1.0,1.1", ("1.0", "1.1")),
        ("1.1, 1.0,1.1", ("1.0", "1.1")),
        ("TLSv1,tlsv1.1", ("1.0", "1.1")),
        ("TLS1.2", ("1.2",)),
        ("1.3", ("1.3",)),
    ],
)
def test_tls_versions_are_read_as_scanners_write_them(text, versions):
    assert parse_tls_versions(text) == versions


@pytest.mark.parametrize("text", ["", "1.4", "SSLv3", "1.0,,1.1", "1.0;1.1", "2"])
def test_anything_else_is_one_line_naming_what_was_typed(text):
    with pytest.raises(VersionError) as error:
        parse_tls_versions(text)
    assert "\n" not in str(error.value)
    assert str(error.value).startswith("not a TLS version: ")


@pytest.mark.parametrize(("version", "name"), [("1.0", "TLSv1"), ("1.1", "TLSv1.1")])
def test_a_context_limited_to_an_old_version_really_negotiates_it(
    smtp_server, certs, version, name
):
    server = smtp_server(tls_context=limit_tls_versions(certs.context(), "1.0", "1.3"))
    context = limit_to_version(ssl.create_default_context(cafile=str(certs.ca_file)), version)
    with smtplib.SMTP(server.host, server.port, timeout=5) as smtp:
        smtp._host = "smtpd.test"
        smtp.starttls(context=context)
        assert smtp.sock.version() == name
    assert server.tls_versions == [name]


def test_a_context_limited_to_tls_1_0_is_refused_by_a_modern_server(smtp_server, certs):
    server = smtp_server(tls_context=certs.context())  # Python's defaults: TLS 1.2 and up
    context = limit_to_version(ssl.create_default_context(cafile=str(certs.ca_file)), "1.0")
    with smtplib.SMTP(server.host, server.port, timeout=5) as smtp:
        smtp._host = "smtpd.test"
        with pytest.raises(ssl.SSLError):
            smtp.starttls(context=context)
    assert server.tls_versions == []
