"""What a server must refuse, as the plugin reports it: relaying, AUTH before TLS, mail
before STARTTLS and forbidden TLS versions.

First against the scripted test server (every answer a server could give), then
against real Postfix instances: the MX that refuses relaying, a deliberately open
relay, a submission port as it should be and one as it must not be.
"""

from __future__ import annotations

import json

import pytest

from tests.plugin import run_plugin, server_args
from tests.relay_fixtures import SUBMISSION_PASSWORD, SUBMISSION_USER
from tests.smtpd import limit_tls_versions

FOREIGN = "someone@relay.example.org"
FULL = ("-f", "probe@example.net", "--rcpt", "postmaster@example.test")


def relay_check(server, *extra: str):
    return run_plugin(*server_args(server, *FULL, "--relay-test", FOREIGN, *extra))


def commands(server) -> list[str]:
    return [line.split(":")[0].split()[0].upper() for line in server.received]


# --- --relay-test ----------------------------------------------------------------------


def test_relay_refused_with_5xx_is_ok_then_rset_and_quit(smtp_server):
    server = smtp_server(rcpt_replies={FOREIGN: "554 5.7.1 Relay access denied"})
    run = relay_check(server)
    assert run.returncode == 0, run.stdout
    assert "RCPT 250, relay test 554, RSET 250, QUIT 221" in run.status
    assert server.received[-3:] == [f"RCPT TO:<{FOREIGN}>", "RSET", "QUIT"]
    assert "relay=" in run.stdout and "relay_rset=" in run.stdout


def test_relay_accepted_is_critical_open_relay_and_still_rset_and_quit(smtp_server):
    server = smtp_server()
    run = relay_check(server)
    assert run.returncode == 2
    assert run.status == f"SMTP_VERBS CRITICAL - open relay: RCPT TO:<{FOREIGN}> accepted (250)"
    assert server.received[-3:] == [f"RCPT TO:<{FOREIGN}>", "RSET", "QUIT"]


def test_relay_tempfail_is_warning_or_the_state_chosen(smtp_server):
    server = smtp_server(rcpt_replies={FOREIGN: "451 4.3.0 try later"})
    run = relay_check(server)
    assert run.returncode == 1
    assert run.status == (
        f"SMTP_VERBS WARNING - relay test RCPT TO:<{FOREIGN}> answered 451 (temporary)"
    )
    assert relay_check(server, "--relay-tempfail-state", "critical").returncode == 2
    assert relay_check(server, "--relay-tempfail-state", "ok").returncode == 0


def test_every_relay_test_address_is_asked_and_the_worst_wins(smtp_server):
    refused = "a@refused.example.org"
    server = smtp_server(rcpt_replies={refused: "554 5.7.1 Relay access denied"})
    run = relay_check(server, "--relay-test", refused)
    assert run.returncode == 2
    assert [c for c in server.received if c.startswith("RCPT")][1:] == [
        f"RCPT TO:<{FOREIGN}>",
        f"RCPT TO:<{refused}>",
    ]
    assert {"relay", "relay_2"} <= set(run.perfdata)


def test_with_data_the_relay_test_gets_its_own_transaction_and_never_data(smtp_server):
    server = smtp_server()  # an open relay: it would take anything
    run = relay_check(server, "--data")
    assert run.returncode == 2
    assert commands(server) == [
        "EHLO", "MAIL", "RCPT", "DATA", ".", "MAIL", "RCPT", "RSET", "QUIT",
    ]  # fmt: skip
    assert [m.rcpt_tos for m in server.messages] == [["postmaster@example.test"]]


def test_a_relay_test_that_times_out_is_critical_like_any_reply(smtp_server):
    server = smtp_server(delays={"RCPT": 0.0})
    server.script.rcpt_replies = {FOREIGN: b""}  # no reply at all to the relay test
    run = relay_check(server, "-t", "1")
    assert run.returncode == 2
    assert run.status == (
        "SMTP_VERBS CRITICAL - timeout after 1s waiting for the RCPT reply of the relay test"
    )


# --- --no-plaintext-auth ---------------------------------------------------------------


@pytest.mark.parametrize("lmtp", [False, True])
def test_auth_offered_before_tls_is_critical_and_names_the_mechanisms(smtp_server, lmtp):
    server = smtp_server(auth_mechanisms=["PLAIN", "LOGIN"], lmtp=lmtp)
    extra = ("--lmtp",) if lmtp else ()
    run = run_plugin(*server_args(server, "--no-plaintext-auth", *extra))
    assert run.returncode == 2
    assert run.status == "SMTP_VERBS CRITICAL - AUTH offered before TLS: PLAIN LOGIN"
    assert not any(c.startswith("AUTH") for c in server.received)


def test_the_old_auth_equals_form_counts_too(smtp_server):
    server = smtp_server(capabilities=["PIPELINING", "AUTH=LOGIN"])
    run = run_plugin(*server_args(server, "--no-plaintext-auth=warning"))
    assert run.returncode == 1
    assert run.status == "SMTP_VERBS WARNING - AUTH offered before TLS: LOGIN"


def test_auth_only_after_starttls_is_ok(smtp_server, certs):
    server = smtp_server(
        tls_context=certs.context(), auth_mechanisms=["PLAIN"], auth_after_tls_only=True
    )
    run = run_plugin(
        *server_args(server, "--no-plaintext-auth", "-S", "--ca-file", str(certs.ca_file))
    )
    assert run.returncode == 0, run.stdout
    assert "plaintext_auth" not in run.perfdata  # a look at the greeting, not timed


# --- --starttls-required ---------------------------------------------------------------


def test_mail_refused_before_starttls_is_ok_and_the_walk_goes_on_in_tls(smtp_server, certs):
    server = smtp_server(tls_context=certs.context(), require_tls=True)
    run = run_plugin(
        *server_args(server, *FULL, "--starttls-required", "--ca-file", str(certs.ca_file))
    )
    assert run.returncode == 0, run.stdout
    assert "EHLO 250, MAIL before STARTTLS 530, STARTTLS 220, TLSv1.3" in run.status
    assert commands(server) == ["EHLO", "MAIL", "STARTTLS", "EHLO", "MAIL", "RCPT", "QUIT"]


def test_mail_accepted_before_starttls_is_critical_then_rset_starttls_and_the_walk(
    smtp_server, certs
):
    server = smtp_server(tls_context=certs.context())
    run = run_plugin(
        *server_args(server, *FULL, "--starttls-required", "--ca-file", str(certs.ca_file))
    )
    assert run.returncode == 2
    assert run.status == (
        "SMTP_VERBS CRITICAL - accepts mail before STARTTLS (MAIL FROM answered 250)"
    )
    assert commands(server) == [
        "EHLO", "MAIL", "RSET", "STARTTLS", "EHLO", "MAIL", "RCPT", "QUIT",
    ]  # fmt: skip
    assert server.tls_versions == ["TLSv1.3"]


# --- TLS facts and versions ------------------------------------------------------------


def test_tls_version_and_cipher_are_in_the_ok_line_verbose_and_json(smtp_server, certs):
    server = smtp_server(tls_context=certs.context())
    args = server_args(server, "-S", "--ca-file", str(certs.ca_file))
    run = run_plugin(*args, "-v")
    assert "STARTTLS 220, TLSv1.3, EHLO 250" in run.status
    assert any(line.startswith("TLS: TLSv1.3, cipher TLS_") for line in run.lines)
    doc = json.loads(run_plugin(*args, "--json").stdout)
    assert doc["hosts"][0]["tls"]["version"] == "TLSv1.3"
    assert doc["hosts"][0]["tls"]["cipher"].startswith("TLS_")


def test_tls_max_version_offers_nothing_above_it(smtp_server, certs):
    server = smtp_server(tls_context=certs.context())
    run = run_plugin(
        *server_args(server, "-S", "--ca-file", str(certs.ca_file), "--tls-max-version", "1.2")
    )
    assert run.returncode == 0, run.stdout
    assert "TLSv1.2" in run.status
    assert server.tls_versions == ["TLSv1.2"]


def test_a_server_that_accepts_a_forbidden_version_is_critical(smtp_server, certs):
    """OpenSSL 3.0 here still speaks TLS 1.0 and 1.1 at security level 0: the probe lowers
    its own level, so a server that allows them is caught, not waved through."""
    server = smtp_server(tls_context=limit_tls_versions(certs.context(), "1.0"))
    run = run_plugin(
        *server_args(server, "-S", "--ca-file", str(certs.ca_file)),
        "--forbid-tls-version", "1.0,1.1", "-v",
    )  # fmt: skip
    assert run.returncode == 2
    assert run.status.startswith("SMTP_VERBS CRITICAL - TLSv1 accepted, though forbidden (TLSv1 ")
    assert server.tls_versions == ["TLSv1.3", "TLSv1", "TLSv1.1"]
    assert server.connections == 3
    assert any(line.startswith("CRITICAL TLS 1.1 only -> TLSv1.1 accepted") for line in run.lines)


def test_a_server_that_refuses_forbidden_versions_is_ok(smtp_server, certs):
    server = smtp_server(tls_context=certs.context())  # TLS 1.2 and up
    run = run_plugin(
        *server_args(server, "-S", "--ca-file", str(certs.ca_file)),
        "--forbid-tls-version", "1.0", "--forbid-tls-version", "1.1", "-v",
    )  # fmt: skip
    assert run.returncode == 0, run.stdout
    assert server.tls_versions == ["TLSv1.3"]
    assert any(line.startswith("OK       TLS 1.0 only -> TLSv1 refused (") for line in run.lines), (
        run.stdout
    )
    doc = json.loads(
        run_plugin(
            *server_args(server, "-S", "--ca-file", str(certs.ca_file)),
            "--forbid-tls-version",
            "1.0",
            "--json",
        ).stdout
    )
    probe = doc["hosts"][0]["forbidden_tls"][0]
    assert (probe["version"], probe["accepted"], probe["state"]) == ("1.0", False, "OK")


def test_a_forbidden_version_probe_that_cannot_reach_tls_is_unknown(smtp_server, certs):
    server = smtp_server(tls_context=certs.context())
    run = run_plugin(
        *server_args(server, "-S", "optional", "--ca-file", str(certs.ca_file)),
        "--forbid-tls-version", "1.0",
    )  # fmt: skip
    assert run.returncode == 0, run.stdout  # reached: 1.0 refused
    server.script.offer_starttls = False
    run = run_plugin(
        *server_args(server, "-S", "optional", "--ca-file", str(certs.ca_file)),
        "--forbid-tls-version", "1.0",
    )  # fmt: skip
    assert run.returncode == 3
    assert run.status.startswith("SMTP_VERBS UNKNOWN - cannot test TLSv1: ")


# --- bad combinations --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--starttls-required", "--tls"), "--starttls-required tests the plaintext port"),
        (("--starttls-required", "-S", "optional"), "--starttls-required contradicts -S optional"),
        (("--no-plaintext-auth", "--tls"), "--no-plaintext-auth: with --tls nothing is sent"),
        (("--no-plaintext-auth", "--helo-only"), "--no-plaintext-auth reads the EHLO reply"),
        (("--no-plaintext-auth=maybe",), "--no-plaintext-auth: unknown state 'maybe'"),
        (("--relay-test", "a@b>\r\nDATA"), "--relay-test"),
        (("--relay-tempfail-state", "warning"), "--relay-tempfail-state needs --relay-test"),
        (("--forbid-tls-version", "1.0"), "--forbid-tls-version needs -S/--starttls or --tls"),
        (("-S", "--forbid-tls-version", "1.0,9"), "--forbid-tls-version: not a TLS version"),
        (
            ("-S", "--tls-min-version", "1.3", "--tls-max-version", "1.2"),
            "--tls-min-version 1.3 is above --tls-max-version 1.2",
        ),
        (
            ("-S", "--tls-min-version", "1.2", "--forbid-tls-version", "1.2"),
            "--forbid-tls-version 1.2 contradicts --tls-min-version 1.2",
        ),
        (("--tls-max-version", "1.2"), "--tls-max-version needs -S/--starttls or --tls"),
    ],
)
def test_bad_combinations_are_unknown_in_one_line_and_nothing_is_sent(smtp_server, args, message):
    server = smtp_server()
    run = run_plugin(*server_args(server, *args))
    assert run.returncode == 3, run.stdout
    assert run.stdout.startswith(f"SMTP_VERBS UNKNOWN - {message}"), run.stdout
    assert len(run.lines) == 1 and "\r" not in run.stdout
    assert server.connections == 0


# --- real Postfix instances ------------------------------------------------------------


@pytest.mark.postfix
def test_postfix_mx_refuses_relaying_and_relay_test_is_ok(postfix):
    run = run_plugin(
        *server_args(postfix, "-f", "probe@verbs.test", "--rcpt", "postmaster@verbs.test"),
        "--relay-test", FOREIGN,
    )  # fmt: skip
    assert run.returncode == 0, run.stdout
    assert "RCPT 250, relay test 554, RSET 250, QUIT 221" in run.status


@pytest.mark.postfix
def test_postfix_open_relay_is_critical(open_relay_postfix):
    run = run_plugin(
        *server_args(open_relay_postfix, "-f", "probe@verbs.test"), "--relay-test", FOREIGN
    )
    assert run.returncode == 2
    assert run.status == f"SMTP_VERBS CRITICAL - open relay: RCPT TO:<{FOREIGN}> accepted (250)"
    assert open_relay_postfix.wait_for_log(r"disconnect from .* rcpt=1 rset=1 quit=1")


@pytest.mark.postfix
def test_postfix_submission_port_refuses_mail_and_auth_before_starttls(submission_postfix, certs):
    run = run_plugin(
        *server_args(
            submission_postfix, "-f", "probe@verbs.test", "--rcpt", "postmaster@verbs.test"
        ),
        "--starttls-required", "--no-plaintext-auth", "--ca-file", str(certs.ca_file),
    )  # fmt: skip
    assert run.returncode == 0, run.stdout
    assert "MAIL before STARTTLS 530, STARTTLS 220, TLSv1.3, EHLO 250, MAIL 250" in run.status


@pytest.mark.postfix
def test_postfix_lax_submission_port_is_critical_for_both(lax_submission_postfix, certs, tmp_path):
    password = tmp_path / "password"
    password.write_text(SUBMISSION_PASSWORD)
    base = server_args(lax_submission_postfix, "-f", "probe@verbs.test", "--ca-file")
    base += [str(certs.ca_file)]
    auth = ["-A", "PLAIN", "-U", SUBMISSION_USER, "--auth-password-file", str(password)]
    run = run_plugin(*base, "--no-plaintext-auth", "-S", *auth, "-v")
    assert run.returncode == 2
    assert run.status == "SMTP_VERBS CRITICAL - AUTH offered before TLS: PLAIN LOGIN CRAM-MD5"
    assert "AUTH PLAIN as probe -> 235" in run.stdout  # the walk went on, AUTH inside TLS
    run = run_plugin(*base, "--starttls-required")
    assert run.returncode == 2
    assert run.status == (
        "SMTP_VERBS CRITICAL - accepts mail before STARTTLS (MAIL FROM answered 250)"
    )
    assert lax_submission_postfix.wait_for_log(r"ehlo=2 starttls=1 mail=2 rset=1 quit=1 commands=7")


# --- start-up cost ---------------------------------------------------------------------


def test_the_new_checks_load_nothing_heavy_and_a_plain_check_not_even_their_modules(
    smtp_server,
):
    from tests.test_startup_imports import PACKAGE, beyond_the_floor, loaded_modules

    server = smtp_server(rcpt_replies={FOREIGN: "554 5.7.1 Relay access denied"})
    args = server_args(server, *FULL)
    for extra in (
        ("--relay-test", FOREIGN),
        ("--no-plaintext-auth",),
        ("--all-addresses", "--require-ipv4"),
    ):
        assert beyond_the_floor(*args, *extra) == set(), extra
    plain = loaded_modules(f"from {PACKAGE}.cli import main\nmain()", *args)
    assert f"{PACKAGE}.cli" in plain
    assert {f"{PACKAGE}.refusals", f"{PACKAGE}.families"}.isdisjoint(plain)


def test_each_relay_test_can_be_judged_on_its_own_by_its_step_name(smtp_server):
    greylisted = "b@greylisted.example.org"
    server = smtp_server(
        rcpt_replies={
            FOREIGN: "554 5.7.1 Relay access denied",
            greylisted: "451 4.7.1 greylisted",
        }
    )
    run = relay_check(
        server, "--relay-test", greylisted, "--expect", "relay_2=4xx,5xx", "--verb-warning",
        "relay_2=1",
    )  # fmt: skip
    assert run.returncode == 0, run.stdout  # 4xx is what this one may answer
    assert run.perfdata["relay_2"].endswith(";1;;0")
    strict = relay_check(server, "--expect", "relay=550")
    assert strict.returncode == 2
    assert strict.status == (
        f"SMTP_VERBS CRITICAL - RCPT TO:<{FOREIGN}> (relay test) answered 554 (expected 550): "
        "5.7.1 Relay access denied"
    )
    unknown = run_plugin(*server_args(server, "--relay-test", FOREIGN, "--expect", "relay_2=5xx"))
    assert unknown.returncode == 3
