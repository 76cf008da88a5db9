"""STARTTLS against a real MTA: the private Postfix with a certificate from the test CA."""

import re
import shutil

import pytest

from tests.plugin import need, run_plugin, server_args
from tests.postfix import SEARCH_PATH

pytestmark = pytest.mark.postfix


PASSWORD = "Tr0ub4dor-&3"


@pytest.fixture(scope="module")
def postfix_tls(postfix, certs, tmp_path_factory):
    """The session's Postfix with STARTTLS on and AUTH after it (Cyrus SASL, sasldb),
    put back to plaintext without AUTH afterwards."""
    if not shutil.which("saslpasswd2", path=SEARCH_PATH):
        need("saslpasswd2 is not installed (sasl2-bin)")
    directory = tmp_path_factory.mktemp("postfix-tls")
    cert, key = certs.write_pair(directory, postfix.hostname, "127.0.0.1", days_left=45)
    postfix.enable_starttls(cert, key)
    postfix.enable_auth({"probe": PASSWORD})
    yield postfix
    postfix.disable_auth()
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


@pytest.fixture
def password_file(tmp_path):
    path = tmp_path / "password"
    path.write_text(PASSWORD + "\n")
    return path


def auth_check(postfix, certs, mechanism, password_file, *extra):
    return check(
        postfix,
        certs,
        "-S",
        "-A",
        mechanism,
        "-U",
        "probe",
        "--auth-password-file",
        str(password_file),
        *extra,
    )


@pytest.mark.parametrize("mechanism", ["PLAIN", "LOGIN", "CRAM-MD5"])
def test_postfix_auth_after_starttls_for_each_mechanism(
    postfix_tls, certs, password_file, mechanism
):
    run = auth_check(postfix_tls, certs, mechanism, password_file, "-vvv")
    assert run.returncode == 0, run.stdout
    assert "STARTTLS 220, TLSv1.3, EHLO 250, AUTH 235, MAIL 250, RCPT 250, QUIT 221" in run.status
    assert PASSWORD not in run.stdout + run.stderr
    postfix_tls.wait_for_log(rf"sasl_method={mechanism}, sasl_username=probe")


def test_postfix_wrong_password_is_authentication_failed(postfix_tls, certs, tmp_path):
    wrong = tmp_path / "wrong"
    wrong.write_text("not-it")
    run = auth_check(postfix_tls, certs, "PLAIN", wrong)
    assert run.returncode == 2
    assert run.status.startswith(
        "SMTP_VERBS CRITICAL - authentication failed: AUTH PLAIN as probe answered 535 "
        "(expected 235): 5.7.8 Error: authentication failed"
    ), run.status


def test_postfix_offers_auth_only_after_starttls(postfix_tls, password_file):
    run = run_plugin(
        *server_args(
            postfix_tls,
            "--allow-plaintext-auth",
            "-A",
            "PLAIN",
            "-U",
            "probe",
            "--auth-password-file",
            str(password_file),
        )
    )
    assert run.returncode == 2
    assert run.status == "SMTP_VERBS CRITICAL - the server does not offer AUTH"
