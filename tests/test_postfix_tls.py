"""STARTTLS against a real MTA: the private Postfix with a certificate from the test CA."""

import re

import pytest

from tests.plugin import run_plugin, server_args

pytestmark = pytest.mark.postfix


@pytest.fixture(scope="module")
def postfix_tls(postfix, certs, tmp_path_factory):
    """The session's Postfix with STARTTLS on, put back to plaintext afterwards."""
    directory = tmp_path_factory.mktemp("postfix-tls")
    cert, key = certs.write_pair(directory, postfix.hostname, "127.0.0.1", days_left=45)
    postfix.enable_starttls(cert, key)
    yield postfix
    postfix.disable_starttls()


def check(postfix, certs, *extra):
    return run_plugin(
        *server_args(
            postfix,
            "--ca-file",
            str(certs.ca_file),
            "-f",
            "probe@verbs.test",
            "--rcpt",
            "postmaster@verbs.test",
            *extra,
        )
    )


def test_postfix_starttls_walk_is_ok_and_verified(postfix_tls, certs):
    run = check(postfix_tls, certs, "-S", "-v")
    assert run.returncode == 0, run.stdout
    assert re.match(
        rf"SMTP_VERBS OK - 127\.0\.0\.1:{postfix_tls.port} banner 220, EHLO 250, STARTTLS 220, "
        r"TLSv1\.3, EHLO 250, MAIL 250, RCPT 250, QUIT 221 in \d+\.\d{3}s, "
        r"certificate expires in 44 days on ",
        run.status,
    ), run.status
    assert "chain and name verified for 127.0.0.1" in run.stdout
    assert f"DNS:{postfix_tls.hostname}" in run.stdout
    postfix_tls.wait_for_log(r"Anonymous TLS connection established|TLS connection established")


def test_postfix_certificate_days_threshold(postfix_tls, certs):
    run = check(postfix_tls, certs, "-S", "-D", "60,30")
    assert run.returncode == 1
    assert run.status.startswith("SMTP_VERBS WARNING - certificate expires in 44 days on ")
    assert run.perfdata["cert_days"].endswith(";60:;30:")


def test_postfix_sni_name_of_the_host_verifies(postfix_tls, certs):
    run = check(postfix_tls, certs, "-S", "--sni", postfix_tls.hostname, "--tls-min-version", "1.3")
    assert run.returncode == 0, run.stdout


def test_postfix_certificate_for_another_name_is_a_mismatch(postfix_tls, certs):
    run = check(postfix_tls, certs, "-S", "--sni", "mx.elsewhere.test")
    assert run.returncode == 2
    assert run.status == (
        "SMTP_VERBS CRITICAL - certificate verify failed: name mismatch: "
        "the certificate is not valid for mx.elsewhere.test"
    )


def test_postfix_untrusted_without_the_ca_file(postfix_tls):
    run = run_plugin(*server_args(postfix_tls, "-S"))
    assert run.returncode == 2
    assert run.status.startswith("SMTP_VERBS CRITICAL - certificate verify failed: ")
    insecure = run_plugin(*server_args(postfix_tls, "-S", "--insecure"))
    assert insecure.returncode == 0, insecure.stdout
