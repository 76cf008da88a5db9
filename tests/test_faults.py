"""Servers that misbehave: each fault ends in a clean state and one line, within the deadline."""

import pytest

from tests import smtpd
from tests.plugin import run_plugin, server_args

FULL = ("-f", "probe@example.net", "--rcpt", "postmaster@example.net")


def test_connection_refused_is_critical(smtp_server):
    server = smtp_server()
    port = server.port
    server.stop()
    run = run_plugin("-H", "127.0.0.1", "-p", str(port), *FULL)
    assert run.returncode == 2
    assert (
        run.status
        == f"SMTP_VERBS CRITICAL - cannot connect to 127.0.0.1:{port}: connection refused"
    )
    assert "connect" in run.perfdata


def test_unreachable_network_is_critical():
    # A private network namespace whose loopback is down: nothing is reachable at all.
    run = run_plugin("-H", "127.0.0.1", *FULL, prefix=("unshare", "--net", "--"))
    assert run.returncode == 2, run.stdout + run.stderr
    assert run.status == (
        "SMTP_VERBS CRITICAL - cannot connect to 127.0.0.1:25: network is unreachable"
    )


def test_name_that_does_not_resolve_is_critical():
    # In a private network namespace with only loopback, so no DNS query leaves the machine.
    run = run_plugin("-H", "nosuch.invalid", "-t", "5", *FULL, prefix=("unshare", "--net", "--"))
    assert run.returncode == 2, run.stdout + run.stderr
    assert run.status.startswith("SMTP_VERBS CRITICAL - cannot resolve nosuch.invalid: ")


def test_silent_server_times_out_naming_the_banner(smtp_server):
    run = run_plugin(*server_args(smtp_server(silent=True), *FULL, "-t", "0.5"))
    assert run.returncode == 2
    assert run.status == "SMTP_VERBS CRITICAL - timeout after 0.5s waiting for the banner"
    assert run.seconds < 3


def test_timeout_names_the_verb_that_was_awaited(smtp_server):
    run = run_plugin(*server_args(smtp_server(delays={"RCPT": 5}), *FULL, "-t", "0.6"))
    assert run.returncode == 2
    assert run.status == "SMTP_VERBS CRITICAL - timeout after 0.6s waiting for the RCPT reply"
    assert 0.6 <= run.seconds_of("total") < 1.5
    assert run.seconds < 3


@pytest.mark.parametrize("state, code", [("warning", 1), ("unknown", 3), ("ok", 0), ("1", 1)])
def test_timeout_state_is_configurable(smtp_server, state, code):
    run = run_plugin(*server_args(smtp_server(silent=True), "-t", f"0.3:{state}"))
    assert run.returncode == code
    assert "timeout after 0.3s waiting for the banner" in run.status


def test_dribbling_server_cannot_stretch_the_deadline(smtp_server):
    # One byte every 0.1 s: the 36-byte banner alone would take 3.6 s.
    run = run_plugin(*server_args(smtp_server(dribble=0.1), "-t", "1"))
    assert run.returncode == 2
    assert run.status == "SMTP_VERBS CRITICAL - timeout after 1s waiting for the banner"
    assert run.seconds < 2.5
    assert 1 <= run.seconds_of("total") < 1.5


@pytest.mark.parametrize(
    "verb, awaited",
    [("EHLO", "the EHLO reply"), ("MAIL", "the MAIL reply"), ("RCPT", "the RCPT reply")],
)
def test_server_closing_mid_conversation_is_critical_and_names_the_verb(smtp_server, verb, awaited):
    run = run_plugin(*server_args(smtp_server(close_at=verb), *FULL))
    assert run.returncode == 2
    assert (
        run.status
        == f"SMTP_VERBS CRITICAL - connection closed by the server while waiting for {awaited}"
    )


def test_server_closing_before_the_banner(smtp_server):
    run = run_plugin(*server_args(smtp_server(close_at="BANNER"), *FULL))
    assert run.returncode == 2
    assert "connection closed by the server while waiting for the banner" in run.status


def test_garbage_banner_is_critical(smtp_server):
    run = run_plugin(*server_args(smtp_server(banner=smtpd.GARBAGE_BANNER), *FULL))
    assert run.returncode == 2
    assert run.status == (
        "SMTP_VERBS CRITICAL - invalid reply to banner: not an SMTP reply line "
        "(no valid 3-digit code): SSH-2.0-OpenSSH_9.2p1 Debian-2\\r\\n"
    )


def test_invalid_code_is_critical(smtp_server):
    run = run_plugin(*server_args(smtp_server(replies={"MAIL": smtpd.INVALID_CODE}), *FULL))
    assert run.returncode == 2
    assert run.status.startswith(
        "SMTP_VERBS CRITICAL - invalid reply to MAIL FROM:<probe@example.net>"
    )


def test_broken_continuation_is_critical(smtp_server):
    run = run_plugin(*server_args(smtp_server(replies={"EHLO": smtpd.BROKEN_CONTINUATION}), *FULL))
    assert run.returncode == 2
    assert "invalid reply to EHLO" in run.status
    assert "continuation line has code 251 after 250" in run.status


def test_continuation_that_never_ends_times_out(smtp_server):
    server = smtp_server(replies={"EHLO": smtpd.UNTERMINATED_CONTINUATION})
    run = run_plugin(*server_args(server, *FULL, "-t", "0.5"))
    assert run.returncode == 2
    assert run.status == "SMTP_VERBS CRITICAL - timeout after 0.5s waiting for the EHLO reply"


def test_overlong_line_is_critical(smtp_server):
    run = run_plugin(*server_args(smtp_server(replies={"RCPT": smtpd.OVERLONG_LINE}), *FULL))
    assert run.returncode == 2
    assert run.status.endswith("reply line longer than 8192 bytes")


def test_nul_and_non_utf8_bytes_are_shown_escaped_and_judged_by_code(smtp_server):
    server = smtp_server(replies={"MAIL": smtpd.NUL_BYTE, "RCPT": smtpd.NON_UTF8})
    run = run_plugin(*server_args(server, *FULL, "-v"))
    assert run.returncode == 0, run.stdout
    assert "250 2.0.0 Ok\\x00hidden" in run.stdout
    assert "250 2.0.0 caf\\xe9 \\xff\\xfe" in run.stdout


def test_every_fault_is_one_line_without_traceback(smtp_server):
    faults = [
        {"banner": smtpd.GARBAGE_BANNER},
        {"replies": {"RCPT": smtpd.OVERLONG_LINE}},
        {"replies": {"MAIL": smtpd.INVALID_CODE}},
        {"replies": {"EHLO": smtpd.BROKEN_CONTINUATION}},
        {"close_after": "MAIL"},
        {"replies": {"RCPT": smtpd.NO_LINE_END}, "close_after": "RCPT"},
    ]
    for fault in faults:
        run = run_plugin(*server_args(smtp_server(**fault), *FULL, "-t", "2"))
        assert run.returncode == 2, (fault, run.stdout)
        assert len(run.lines) == 1, (fault, run.stdout)
        assert "Traceback" not in run.stdout + run.stderr
