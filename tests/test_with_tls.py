"""Send-through, LMTP, --quit-after and --mx together with STARTTLS."""

from __future__ import annotations

from tests.conftest import MX_DOMAIN
from tests.plugin import run_plugin, server_args
from tests.smtpd import Script

FULL = ("-f", "probe@example.net", "--rcpt", "postmaster@example.net")


def verbs(server):
    return [c.split()[0].upper() for c in server.received]


def test_quit_after_starttls_says_quit_once_tls_is_up(smtp_server, certs):
    server = smtp_server(tls_context=certs.context())
    args = server_args(server, "--ca-file", str(certs.ca_file), "-S", *FULL)
    run = run_plugin(*args, "--quit-after", "starttls")
    assert run.returncode == 0, run.stdout
    assert verbs(server) == ["EHLO", "STARTTLS", "QUIT"]
    assert server.tls_versions == ["TLSv1.3"]  # QUIT went over TLS
    assert "tls" in run.perfdata and "ehlo_tls" not in run.perfdata


def test_quit_after_ehlo_means_the_ehlo_after_starttls(smtp_server, certs):
    server = smtp_server(tls_context=certs.context())
    args = server_args(server, "--ca-file", str(certs.ca_file), "-S", *FULL)
    run = run_plugin(*args, "--quit-after", "ehlo")
    assert run.returncode == 0, run.stdout
    assert verbs(server) == ["EHLO", "STARTTLS", "EHLO", "QUIT"]


def test_data_over_starttls_is_delivered(smtp_server, certs):
    server = smtp_server(tls_context=certs.context())
    args = server_args(server, "--ca-file", str(certs.ca_file), "-S", *FULL, "--data")
    run = run_plugin(*args)
    assert run.returncode == 0, run.stdout
    assert "DATA 354, DOT 250" in run.status
    assert len(server.messages) == 1


def test_lmtp_greets_with_lhlo_again_after_starttls(smtp_server, certs):
    server = smtp_server(Script(lmtp=True, tls_context=certs.context()))
    args = server_args(server, "--ca-file", str(certs.ca_file), "-S", "-L", *FULL, "--data")
    run = run_plugin(*args)
    assert run.returncode == 0, run.stdout
    assert verbs(server) == ["LHLO", "STARTTLS", "LHLO", "MAIL", "RCPT", "DATA", ".", "QUIT"]


def test_every_mx_host_gets_its_own_tls_handshake_and_certificate_days(mx_hosts, certs):
    scripts = [Script(tls_context=certs.context()) for _ in range(2)]
    _, servers, args = mx_hosts(*scripts)
    run = run_plugin("--mx", MX_DOMAIN, *args, "-S", "--insecure", "-D", "30")
    assert run.returncode == 0, run.stdout
    assert "2 of 2 MX hosts OK" in run.status
    assert {"mx1.example.test_cert_days", "mx2.example.test_tls"} <= set(run.perfdata)
    assert all(server.tls_versions == ["TLSv1.3"] for server in servers)
    verbose = run_plugin("--mx", MX_DOMAIN, *args, "-S", "--insecure", "-v")
    assert sum("not verified (--insecure)" in line for line in verbose.lines) == 2  # per host
