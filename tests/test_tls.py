"""STARTTLS, implicit TLS and certificate checks, against the project's server over real TLS."""

import re
import ssl
import subprocess
import sys

import pytest

from tests.plugin import ROOT, run_plugin, server_args

FULL = ("-f", "probe@example.net", "--rcpt", "postmaster@example.net")


def tls_args(server, certs, *more):
    return server_args(server, "--ca-file", str(certs.ca_file), *more)


def test_starttls_is_timed_as_starttls_tls_and_ehlo_tls_and_the_walk_goes_on_encrypted(
    smtp_server, certs
):
    server = smtp_server(tls_context=certs.context())
    run = run_plugin(*tls_args(server, certs, "-S", *FULL))
    assert run.returncode == 0, run.stdout
    assert re.fullmatch(
        rf"SMTP_VERBS OK - 127\.0\.0\.1:{server.port} banner 220, EHLO 250, STARTTLS 220, "
        r"TLSv1\.3, EHLO 250, MAIL 250, RCPT 250, QUIT 221 in \d+\.\d{3}s, "
        r"certificate expires in 89 days on \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC",
        run.status,
    ), run.status
    assert {"starttls", "tls", "ehlo_tls", "cert_days"} <= set(run.perfdata)
    assert [c.split()[0].upper() for c in server.received] == [
        "EHLO",
        "STARTTLS",
        "EHLO",
        "MAIL",
        "RCPT",
        "QUIT",
    ]
    assert server.tls_versions == ["TLSv1.3"]


def test_starttls_not_offered_is_critical_and_quits_politely(smtp_server):
    server = smtp_server()  # no TLS context: no STARTTLS in EHLO
    run = run_plugin(*server_args(server, "-S", *FULL))
    assert run.returncode == 2
    assert run.status == "SMTP_VERBS CRITICAL - STARTTLS not offered"
    assert "starttls" not in run.perfdata  # nothing was sent: nothing to time
    assert [c.split()[0].upper() for c in server.received] == ["EHLO", "QUIT"]


def test_starttls_optional_reports_plaintext_when_not_offered(smtp_server):
    server = smtp_server()
    run = run_plugin(*server_args(server, "--starttls=optional", *FULL))
    assert run.returncode == 0, run.stdout
    assert "EHLO 250, STARTTLS not offered, continuing in plaintext, MAIL 250" in run.status
    assert "tls" not in run.perfdata and "starttls" not in run.perfdata


def test_starttls_optional_uses_tls_when_offered(smtp_server, certs):
    server = smtp_server(tls_context=certs.context())
    run = run_plugin(*tls_args(server, certs, "--starttls", "optional", *FULL))
    assert run.returncode == 0, run.stdout
    assert "STARTTLS 220, TLSv1.3, EHLO 250" in run.status
    assert server.tls_versions == ["TLSv1.3"]


def test_starttls_refused_with_454_is_critical_or_warning_when_told(smtp_server, certs):
    server = smtp_server(
        tls_context=certs.context(), replies={"STARTTLS": "454 4.7.0 TLS not available"}
    )
    run = run_plugin(*tls_args(server, certs, "-S", *FULL))
    assert run.returncode == 2
    assert run.status == (
        "SMTP_VERBS CRITICAL - STARTTLS answered 454 (expected 220): 4.7.0 TLS not available"
    )
    assert server.received[-1].upper() == "QUIT"
    warned = run_plugin(*tls_args(server, certs, "-S", "--warning-codes", "starttls=4xx"))
    assert warned.returncode == 1
    assert warned.status.startswith("SMTP_VERBS WARNING - STARTTLS answered 454")


def test_server_dropping_the_connection_after_starttls_is_critical(smtp_server, certs):
    server = smtp_server(tls_context=certs.context(), close_after="STARTTLS")
    run = run_plugin(*tls_args(server, certs, "-S", *FULL))
    assert run.returncode == 2
    assert run.status == (
        "SMTP_VERBS CRITICAL - connection closed by the server during the TLS handshake"
    )
    assert "tls" in run.perfdata


def test_handshake_reset_is_critical(smtp_server, certs):
    server = smtp_server(tls_context=certs.context(), tls_fault="reset")
    run = run_plugin(*tls_args(server, certs, "-S", *FULL))
    assert run.returncode == 2
    assert len(run.lines) == 1
    # an abort is a FIN or an RST depending on what the server had read: both are named
    assert run.status in (
        "SMTP_VERBS CRITICAL - connection closed by the server during the TLS handshake",
        "SMTP_VERBS CRITICAL - connection reset by the server during the TLS handshake",
    )


@pytest.mark.parametrize("mode", [("-S",), ("--tls",)])
def test_hanging_handshake_ends_within_the_timeout(smtp_server, certs, mode):
    server = smtp_server(
        tls_context=certs.context(), tls_fault="hang", implicit_tls=mode == ("--tls",)
    )
    run = run_plugin(*tls_args(server, certs, *mode, "-t", "1"))
    assert run.returncode == 2
    assert run.status == "SMTP_VERBS CRITICAL - timeout after 1s waiting for the TLS handshake"
    assert run.seconds < 3
    assert run.seconds_of("total") < 1.3


def test_dribbling_server_after_tls_cannot_stretch_the_deadline(smtp_server, certs):
    server = smtp_server(tls_context=certs.context(), implicit_tls=True, dribble=0.1)
    run = run_plugin(*tls_args(server, certs, "--tls", "-t", "1"))
    assert run.returncode == 2
    assert run.status == "SMTP_VERBS CRITICAL - timeout after 1s waiting for the banner"
    assert run.seconds_of("total") < 1.3


def test_implicit_tls_handshakes_before_the_banner(smtp_server, certs):
    server = smtp_server(tls_context=certs.context(), implicit_tls=True)
    run = run_plugin(*tls_args(server, certs, "--ssl", *FULL, "-vvv"))
    assert run.returncode == 0, run.stdout
    assert re.search(r"- 127\.0\.0\.1:\d+ TLSv1\.3, banner 220, EHLO 250, MAIL 250", run.status)
    transcript = run.lines[run.lines.index("transcript:") + 1 :]
    assert transcript[1].startswith("*: TLS handshake: TLSv1.3")
    assert transcript[2] == "S: 220 smtpd.test ESMTP test server"
    assert "STARTTLS" not in " ".join(server.received).upper()


def test_implicit_tls_against_a_plaintext_server_fails_the_handshake(smtp_server, certs):
    server = smtp_server()
    run = run_plugin(*tls_args(server, certs, "--tls", "-t", "2"))
    assert run.returncode == 2
    assert run.status.startswith("SMTP_VERBS CRITICAL - TLS handshake failed: ")
    assert len(run.lines) == 1


def test_tls_defaults_to_port_465():
    # Nothing listens there in a private network namespace: the refusal names the port.
    run = run_plugin("-H", "127.0.0.1", "--tls", "-t", "2", prefix=("unshare", "--net", "--"))
    assert "127.0.0.1:465" in run.status, run.stdout + run.stderr


def test_self_signed_certificate_is_critical_and_says_why(smtp_server, certs):
    server = smtp_server(tls_context=certs.context(ca=certs.stranger))
    run = run_plugin(*tls_args(server, certs, "-S", *FULL))
    assert run.returncode == 2
    assert run.status == (
        "SMTP_VERBS CRITICAL - certificate verify failed: unable to get local issuer certificate"
    )
    assert "ehlo_tls" not in run.perfdata


def test_certificate_for_another_host_is_critical_name_mismatch(smtp_server, certs):
    server = smtp_server(tls_context=certs.context("mx.other.test"))
    run = run_plugin(*tls_args(server, certs, "-S", *FULL))
    assert run.returncode == 2
    assert run.status == (
        "SMTP_VERBS CRITICAL - certificate verify failed: name mismatch: "
        "the certificate is not valid for 127.0.0.1"
    )


def test_sni_sets_the_name_that_is_sent_and_verified(smtp_server, certs):
    server = smtp_server(tls_context=certs.context("mx.other.test"))
    run = run_plugin(*tls_args(server, certs, "-S", "--sni", "mx.other.test", "-v"))
    assert run.returncode == 0, run.stdout
    assert "chain and name verified for mx.other.test" in run.stdout


def test_sni_name_reaches_the_server(smtp_server, certs):
    seen = []
    context = certs.context("mx.other.test")
    context.sni_callback = lambda sock, name, ctx: seen.append(name)
    server = smtp_server(tls_context=context)
    assert run_plugin(*tls_args(server, certs, "-S", "--sni", "mx.other.test")).returncode == 0
    assert seen == ["mx.other.test"]


def test_expired_certificate_is_critical_with_the_date(smtp_server, certs):
    server = smtp_server(tls_context=certs.context(days_left=-3))
    run = run_plugin(*tls_args(server, certs, "-S", *FULL))
    assert run.returncode == 2
    assert re.fullmatch(
        r"SMTP_VERBS CRITICAL - certificate verify failed: certificate expired on "
        r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC",
        run.status,
    ), run.status
    assert run.perfdata["cert_days"].startswith("-3.00")
    assert "MAIL" not in " ".join(server.received).upper()  # no mail over an invalid chain
    assert server.received[-1].upper() == "QUIT"


def test_not_yet_valid_certificate_is_critical(smtp_server, certs):
    server = smtp_server(tls_context=certs.context(valid_from_days=2, days_left=60))
    run = run_plugin(*tls_args(server, certs, "-S"))
    assert run.returncode == 2
    assert "certificate verify failed: certificate not valid before " in run.status


def test_insecure_accepts_a_self_signed_gateway_but_still_reports_expiry(smtp_server, certs):
    good = smtp_server(tls_context=certs.context(ca=certs.stranger))
    run = run_plugin(*server_args(good, "-S", "--insecure", "-v", *FULL))
    assert run.returncode == 0, run.stdout
    assert "certificate not verified (--insecure)" in run.stdout
    expired = smtp_server(tls_context=certs.context(ca=certs.stranger, days_left=-1))
    run = run_plugin(*server_args(expired, "-S", "--insecure", *FULL))
    assert run.returncode == 2
    assert re.match(
        r"SMTP_VERBS CRITICAL - certificate expired on \d{4}-.* \(1 day ago\)", run.status
    )
    assert [c.split()[0].upper() for c in expired.received][-3:] == ["MAIL", "RCPT", "QUIT"]


@pytest.mark.parametrize(
    "days_left, thresholds, code, word",
    [(90, "30,14", 0, "OK"), (20, "30,14", 1, "WARNING"), (10, "30,14", 2, "CRITICAL")],
)
def test_certificate_days_thresholds_like_check_smtp_d(
    smtp_server, certs, days_left, thresholds, code, word
):
    server = smtp_server(tls_context=certs.context(days_left=days_left))
    run = run_plugin(*tls_args(server, certs, "-S", "-D", thresholds))
    assert run.returncode == code, run.stdout
    assert run.status.startswith(f"SMTP_VERBS {word} - ")
    assert f"certificate expires in {days_left - 1} days on " in run.status
    assert re.fullmatch(rf"{days_left - 1}\.9\d;30:;14:", run.perfdata["cert_days"])


def test_soon_expiring_warning_names_the_threshold(smtp_server, certs):
    server = smtp_server(tls_context=certs.context(days_left=5))
    run = run_plugin(*tls_args(server, certs, "-S", "--certificate-days", "7"))
    assert run.returncode == 1
    assert run.status.endswith("(warning below 7)")


def test_tls_min_version_13_against_a_tls12_server_is_critical(smtp_server, certs):
    server = smtp_server(tls_context=certs.context(maximum_version=ssl.TLSVersion.TLSv1_2))
    run = run_plugin(*tls_args(server, certs, "-S", "--tls-min-version", "1.3", *FULL))
    assert run.returncode == 2
    assert run.status == "SMTP_VERBS CRITICAL - TLSv1.2 negotiated, below --tls-min-version 1.3"
    assert server.received[-1].upper() == "QUIT"
    assert run_plugin(*tls_args(server, certs, "-S", "--tls-min-version", "1.2")).returncode == 0


def test_verbose_shows_protocol_cipher_subject_issuer_names_and_expiry(smtp_server, certs):
    server = smtp_server(tls_context=certs.context())
    run = run_plugin(*tls_args(server, certs, "-S", "-v"))
    assert run.returncode == 0
    text = run.stdout
    assert re.search(
        r"^TLS: TLSv1\.3, cipher TLS_\w+ \(\d+ bits\), certificate chain and name "
        r"verified for 127\.0\.0\.1$",
        text,
        re.M,
    )
    assert re.search(r"^certificate subject: .*trustme", text, re.M)
    assert re.search(r"^certificate issuer: OU=Testing CA", text, re.M)
    assert "certificate names: DNS:smtpd.test, DNS:localhost, IP:127.0.0.1, IP:::1" in text
    assert re.search(
        r"^certificate valid: \S+ \S+ UTC to \S+ \S+ UTC \(\d+\.\d days left\)$", text, re.M
    )
    assert re.search(r"^OK +TLS handshake -> TLSv1\.3 TLS_\w+ \(\d\.\d{6}s\)$", text, re.M)


def test_tls_handshake_time_has_its_own_thresholds(smtp_server, certs):
    server = smtp_server(tls_context=certs.context())
    run = run_plugin(*tls_args(server, certs, "-S", "--verb-critical", "tls=0.000001"))
    assert run.returncode == 2
    assert run.status.startswith("SMTP_VERBS CRITICAL - TLS handshake took ")


def test_expired_intermediate_certificate_is_critical_and_named(smtp_server, certs, tmp_path):
    server = smtp_server(tls_context=certs.context_with_expired_intermediate(tmp_path))
    run = run_plugin(*tls_args(server, certs, "-S", "-v"))
    assert run.returncode == 2, run.stdout
    assert re.fullmatch(
        r"SMTP_VERBS CRITICAL - certificate verify failed: certificate expired on "
        r"\S+ \S+ UTC \(chain certificate CN=Expired Intermediate\)",
        run.status,
    ), run.status
    assert run.perfdata["cert_days"].startswith("-1.00")
    assert "chain certificate CN=Expired Intermediate ends first: " in run.stdout


def imported_modules(*args: str) -> set[str]:
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "check_smtp_verbs", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=30,
    )
    assert done.returncode in (0, 1, 2), done.stdout + done.stderr
    imported = {line.rsplit("|", 1)[-1].strip() for line in done.stderr.splitlines()}
    assert "check_smtp_verbs.probe" in imported  # the measurement works
    return imported


def test_a_plaintext_check_loads_no_tls_or_auth_code(smtp_server):
    imported = imported_modules(*server_args(smtp_server()))
    assert not imported & {
        "check_smtp_verbs.secure",
        "check_smtp_verbs.core.tls",
        "check_smtp_verbs.core.auth",
        "ssl",
        "cryptography",
    }


def test_a_verified_tls_check_reads_certificates_without_loading_cryptography(smtp_server, certs):
    imported = imported_modules(*tls_args(smtp_server(tls_context=certs.context()), certs, "-S"))
    assert "check_smtp_verbs.core.tls" in imported
    assert "cryptography" not in imported
    insecure = imported_modules(
        *server_args(smtp_server(tls_context=certs.context()), "-S", "--insecure")
    )
    assert "cryptography" in insecure  # only there is the DER form all there is


def test_certificate_days_alone_implies_starttls_like_check_smtp(smtp_server, certs):
    server = smtp_server(tls_context=certs.context(days_left=20))
    run = run_plugin(*tls_args(server, certs, "-D", "30,14"))
    assert run.returncode == 1, run.stdout
    assert "STARTTLS" in [c.upper() for c in server.received]
    assert run.status.startswith("SMTP_VERBS WARNING - certificate expires in 19 days on ")


def test_starttls_over_ipv6_verifies_the_address(smtp_server, certs):
    server = smtp_server(host="::1", tls_context=certs.context())
    run = run_plugin(*tls_args(server, certs, "-S", "-6", "-v"))
    assert run.returncode == 0, run.stdout
    assert run.status.startswith(f"SMTP_VERBS OK - [::1]:{server.port} banner 220")
    assert "chain and name verified for ::1" in run.stdout


def test_verified_and_insecure_checks_describe_the_certificate_alike(smtp_server, certs):
    """Two decoders (OpenSSL's dict when verified, cryptography with --insecure), one view."""
    server = smtp_server(tls_context=certs.context())

    def certificate_lines(*args):
        run = run_plugin(*server_args(server, "-S", "-v", *args))
        assert run.returncode == 0, run.stdout
        return [line for line in run.lines if line.startswith("certificate ")]

    verified = certificate_lines("--ca-file", str(certs.ca_file))
    assert len(verified) == 4
    assert verified == certificate_lines("--insecure")


def test_every_tls_fault_is_one_line_without_traceback_within_the_deadline(smtp_server, certs):
    faults = [
        ({"tls_fault": "hang"}, ()),
        ({"tls_fault": "reset"}, ()),
        ({"close_after": "STARTTLS"}, ()),
        ({"replies": {"STARTTLS": "454 4.7.0 TLS not available"}}, ()),
        ({"context": {"names": ("mx.other.test",)}}, ()),
        ({"context": {"days_left": -1}}, ()),
        ({"context": {"ca": certs.stranger}}, ()),
        ({"offer_starttls": False}, ()),
        ({}, ("--tls",)),  # implicit TLS against a STARTTLS server
    ]
    for fault, extra in faults:
        fault = dict(fault)
        context_args = fault.pop("context", {})
        names = context_args.pop("names", ())
        server = smtp_server(tls_context=certs.context(*names, **context_args), **fault)
        run = run_plugin(*tls_args(server, certs, *(extra or ("-S",)), "-t", "1.5"))
        assert run.returncode == 2, (fault, run.stdout)
        assert len(run.lines) == 1, (fault, run.stdout)
        assert "Traceback" not in run.stdout + run.stderr
        assert run.seconds < 4, (fault, run.seconds)
