"""--data sends a real message through; --quit-after stops the walk anywhere."""

import email
import email.policy
import re

import pytest

from tests.plugin import run_plugin, server_args

FULL = ("-f", "probe@example.net", "--rcpt", "postmaster@example.net")


def verbs(server):
    return [c.split()[0].upper() for c in server.received]


def test_data_sends_an_rfc5322_probe_message_and_times_data_and_dot(smtp_server):
    server = smtp_server()
    run = run_plugin(*server_args(server, *FULL, "--data"))
    assert run.returncode == 0, run.stdout
    assert "RCPT 250, DATA 354, DOT 250, QUIT 221" in run.status
    assert {"data", "dot"} <= set(run.perfdata)
    assert verbs(server) == ["EHLO", "MAIL", "RCPT", "DATA", ".", "QUIT"]
    [stored] = server.messages
    assert (stored.mail_from, stored.rcpt_tos) == ("probe@example.net", ["postmaster@example.net"])
    message = email.message_from_bytes(stored.data, policy=email.policy.strict)
    assert message["From"] == "probe@example.net"
    assert message["To"] == "postmaster@example.net"
    assert message["Subject"] == "check_smtp_verbs monitoring probe"
    assert message["X-Check-SMTP-Verbs"] == "probe"
    assert re.fullmatch(r"<[^@<>\s]+@[^@<>\s]+>", message["Message-ID"])
    assert message["Date"].datetime is not None
    assert b"\r\n" in stored.data and b"\n" not in stored.data.replace(b"\r\n", b"")


def test_every_probe_message_has_its_own_message_id_and_the_given_subject(smtp_server):
    server = smtp_server()
    for _ in range(2):
        run = run_plugin(*server_args(server, *FULL, "--data", "--subject", "probe from nagios1"))
        assert run.returncode == 0
    first, second = (email.message_from_bytes(m.data) for m in server.messages)
    assert first["Message-ID"] != second["Message-ID"]
    assert first["Subject"] == second["Subject"] == "probe from nagios1"


def test_null_sender_message_still_has_a_from_header(smtp_server):
    server = smtp_server()
    run = run_plugin(*server_args(server, "--rcpt", "postmaster@example.net", "--data"))
    assert run.returncode == 0
    message = email.message_from_bytes(server.messages[0].data)
    assert message["From"].startswith("postmaster@")


def test_several_recipients_are_all_in_to(smtp_server):
    server = smtp_server()
    run = run_plugin(*server_args(server, *FULL, "--rcpt", "abuse@example.net", "--data"))
    assert run.returncode == 0
    message = email.message_from_bytes(server.messages[0].data)
    assert message["To"] == "postmaster@example.net, abuse@example.net"


def test_data_refused_is_critical_naming_data_and_still_says_quit(smtp_server):
    server = smtp_server(replies={"DATA": "554 5.5.1 Error: no valid recipients"})
    run = run_plugin(*server_args(server, *FULL, "--data"))
    assert run.returncode == 2
    assert run.status == (
        "SMTP_VERBS CRITICAL - DATA answered 554 (expected 354): 5.5.1 Error: no valid recipients"
    )
    assert verbs(server)[-1] == "QUIT" and server.messages == []


def test_message_refused_at_the_dot_is_critical(smtp_server):
    server = smtp_server(replies={"DOT": "451 4.7.1 greylisted"})
    run = run_plugin(*server_args(server, *FULL, "--data"))
    assert run.returncode == 2
    assert run.status == (
        "SMTP_VERBS CRITICAL - end of DATA answered 451 (expected 250): 4.7.1 greylisted"
    )
    assert verbs(server)[-1] == "QUIT" and server.messages == []


def test_warning_codes_at_the_dot(smtp_server):
    server = smtp_server(replies={"DOT": "451 4.7.1 greylisted"})
    run = run_plugin(*server_args(server, *FULL, "--data", "--warning-codes", "dot=4xx"))
    assert run.returncode == 1
    rejected = smtp_server(replies={"DOT": "554 5.7.1 spam"})
    run = run_plugin(*server_args(rejected, *FULL, "--data", "--warning-codes", "dot=4xx"))
    assert run.returncode == 2


def test_connection_dropped_during_data_is_critical_naming_the_end_of_data(smtp_server):
    server = smtp_server(close_at="DOT")
    run = run_plugin(*server_args(server, *FULL, "--data"))
    assert run.returncode == 2
    assert run.status == (
        "SMTP_VERBS CRITICAL - connection closed by the server while waiting for the reply "
        "to the end of DATA"
    )
    assert server.messages == []


def test_slow_dot_times_out_within_the_deadline(smtp_server):
    server = smtp_server(delays={"DOT": 5})
    run = run_plugin(*server_args(server, *FULL, "--data", "-t", "0.6"))
    assert run.returncode == 2
    assert run.status == (
        "SMTP_VERBS CRITICAL - timeout after 0.6s waiting for the reply to the end of DATA"
    )
    assert run.seconds < 3


def test_expect_and_verb_thresholds_apply_to_data_and_dot(smtp_server):
    server = smtp_server(replies={"DOT": "251 2.0.0 odd but fine"})
    run = run_plugin(
        *server_args(server, *FULL, "--data", "--expect", "dot=25x", "--verb-critical", "dot=60")
    )
    assert run.returncode == 0, run.stdout
    assert run.perfdata["dot"].endswith(";;60;0")


def test_data_needs_a_recipient():
    run = run_plugin("-H", "127.0.0.1", "--data")
    assert run.returncode == 3
    assert run.stdout == "SMTP_VERBS UNKNOWN - --data needs at least one --rcpt\n"


def test_subject_with_a_line_break_is_refused_before_connecting(smtp_server):
    server = smtp_server()
    run = run_plugin(*server_args(server, *FULL, "--data", "--subject", "x\r\nBcc: a@b"))
    assert run.returncode == 3
    assert run.status.startswith("SMTP_VERBS UNKNOWN - --subject contains the control character")
    assert server.connections == 0


# --- --quit-after ---------------------------------------------------------


@pytest.mark.parametrize(
    "verb, sent, status",
    [
        ("banner", ["QUIT"], "banner 220, QUIT 221"),
        ("ehlo", ["EHLO", "QUIT"], "banner 220, EHLO 250, QUIT 221"),
        ("mail", ["EHLO", "MAIL", "QUIT"], "EHLO 250, MAIL 250, QUIT 221"),
        ("rcpt", ["EHLO", "MAIL", "RCPT", "RCPT", "QUIT"], "RCPT 250, RCPT 250, QUIT 221"),
    ],
)
def test_quit_after_stops_the_walk_after_that_verb_and_says_quit(smtp_server, verb, sent, status):
    server = smtp_server()
    args = (*FULL, "--rcpt", "abuse@example.net", "--data", "--quit-after", verb)
    run = run_plugin(*server_args(server, *args))
    assert run.returncode == 0, run.stdout
    assert verbs(server) == sent
    assert status in run.status
    assert server.messages == []


def test_quit_after_connect_hangs_up_after_the_handshake_without_reading(smtp_server):
    server = smtp_server()
    run = run_plugin(*server_args(server, *FULL, "--quit-after", "connect"))
    assert run.returncode == 0, run.stdout
    assert set(run.perfdata) == {"connect", "total"}
    assert server.received == []


def test_quit_after_data_hangs_up_at_354_so_no_message_is_delivered(smtp_server):
    server = smtp_server()
    run = run_plugin(*server_args(server, *FULL, "--data", "--quit-after", "data", "-vvv"))
    assert run.returncode == 0, run.stdout
    assert "RCPT 250, DATA 354 in" in run.status
    assert verbs(server) == ["EHLO", "MAIL", "RCPT", "DATA"]
    assert server.messages == []
    assert "quit" not in run.perfdata


def test_quit_after_ehlo_also_means_the_helo_fallback(smtp_server):
    server = smtp_server(replies={"EHLO": "502 5.5.2 what"})
    run = run_plugin(*server_args(server, *FULL, "--quit-after", "ehlo"))
    assert run.returncode == 0
    assert verbs(server) == ["EHLO", "HELO", "QUIT"]


@pytest.mark.parametrize(
    "args, message",
    [
        (("--quit-after", "rcpt"), "--quit-after 'rcpt': this walk has no such step"),
        (("--quit-after", "data", "--rcpt", "a@b.example"), "--quit-after 'data'"),
        (("--quit-after", "lunch"), "(it can stop after: banner, connect, ehlo, helo, lhlo)"),
    ],
)
def test_quit_after_a_verb_the_walk_does_not_reach_is_unknown(args, message):
    run = run_plugin("-H", "127.0.0.1", *args)
    assert run.returncode == 3
    assert message in run.status
