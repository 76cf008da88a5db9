"""-C/-R and --command-expect: extra verbs, timed and judged like the built-in ones."""

import pytest

from tests.plugin import run_plugin, server_args

FULL = ("-f", "probe@example.net", "--rcpt", "postmaster@example.net")


def test_commands_are_sent_after_ehlo_and_mail_in_order_and_timed(smtp_server):
    server = smtp_server()
    run = run_plugin(*server_args(server, *FULL, "-C", "NOOP", "-C", "VRFY postmaster", "-v"))
    assert run.returncode == 0, run.stdout
    assert server.received[1:5] == [
        "MAIL FROM:<probe@example.net>",
        "NOOP",
        "VRFY postmaster",
        "RCPT TO:<postmaster@example.net>",
    ]
    assert "MAIL 250, NOOP 250, VRFY 252, RCPT 250" in run.status
    assert {"noop", "vrfy"} <= set(run.perfdata)
    assert any(line.startswith("OK       VRFY postmaster -> 252 2.0.0") for line in run.lines)


def test_without_mail_from_commands_follow_ehlo(smtp_server):
    server = smtp_server()
    assert run_plugin(*server_args(server, "-C", "NOOP")).returncode == 0
    assert [c.split()[0] for c in server.received] == ["EHLO", "NOOP", "QUIT"]


def test_response_regex_mismatch_is_critical_and_says_what_did_not_match(smtp_server):
    server = smtp_server()
    run = run_plugin(*server_args(server, "-C", "VRFY postmaster", "-R", "^250"))
    assert run.returncode == 2
    assert run.status == (
        "SMTP_VERBS CRITICAL - VRFY postmaster answered 252, not matching /^250/: "
        "2.0.0 Cannot VRFY user, but will accept message"
    )
    assert [c.split()[0] for c in server.received][-1] == "QUIT"


def test_response_mismatch_follows_warning_codes(smtp_server):
    args = ("-C", "VRFY postmaster", "-R", "^250", "--warning-codes", "vrfy=252")
    assert run_plugin(*server_args(smtp_server(), *args)).returncode == 1


def test_response_regex_is_searched_in_the_whole_reply_code_included(smtp_server):
    server = smtp_server(replies={"HELP": ["214", "2.0.0 Commands:", "2.0.0 HELO EHLO MAIL"]})
    for pattern in ("^214 2.0.0 HELO", "Commands:$", "^214-", "EHLO MAIL"):
        run = run_plugin(*server_args(server, "-C", "HELP", "-R", pattern))
        assert run.returncode == 0, (pattern, run.stdout)
    assert run_plugin(*server_args(server, "-C", "HELP", "-R", "^250")).returncode == 2


def test_response_alone_accepts_any_code_like_check_smtp(smtp_server):
    run = run_plugin(*server_args(smtp_server(), "-C", "EXPN staff", "-R", "^502 5.5.1"))
    assert run.returncode == 0, run.stdout


def test_responses_pair_with_commands_in_order(smtp_server):
    server = smtp_server()
    args = ("-C", "NOOP", "-C", "VRFY postmaster", "-R", "^250", "-R", "^252")
    assert run_plugin(*server_args(server, *args)).returncode == 0
    swapped = ("-C", "NOOP", "-C", "VRFY postmaster", "-R", "^252", "-R", "^250")
    assert run_plugin(*server_args(server, *swapped)).returncode == 2


def test_command_expect_sets_the_codes_of_one_command(smtp_server):
    server = smtp_server()
    ok = run_plugin(*server_args(server, "--command-expect", "EXPN staff=502"))
    assert ok.returncode == 0, ok.stdout
    bad = run_plugin(*server_args(server, "--command-expect", "NOOP=251"))
    assert bad.returncode == 2
    assert bad.status == "SMTP_VERBS CRITICAL - NOOP answered 250 (expected 251): 2.0.0 Ok"


def test_known_verbs_have_rfc_defaults_and_unknown_ones_want_2xx(smtp_server):
    server = smtp_server()
    assert run_plugin(*server_args(server, "-C", "EXPN staff")).returncode == 2
    run = run_plugin(*server_args(server, "-C", "XCLIENT NAME=probe"))
    assert run.returncode == 2
    assert "XCLIENT NAME=probe answered 502 (expected 2xx)" in run.status


def test_expect_warning_codes_and_time_ranges_work_with_command_verbs(smtp_server):
    server = smtp_server()
    assert run_plugin(*server_args(server, "-C", "EXPN x", "--expect", "expn=502")).returncode == 0
    args = ("-C", "EXPN x", "--warning-codes", "expn=5xx")
    assert run_plugin(*server_args(server, *args)).returncode == 1
    run = run_plugin(*server_args(server, "-C", "NOOP", "--verb-critical", "noop=60"))
    assert run.perfdata["noop"].endswith(";;60;0")


def test_the_same_verb_twice_and_a_rcpt_command_get_their_own_labels(smtp_server):
    server = smtp_server()
    args = (*FULL, "-C", "NOOP", "-C", "NOOP", "-C", "RCPT TO:<abuse@example.net>", "-R", "^250")
    run = run_plugin(*server_args(server, *args))
    assert run.returncode == 0, run.stdout
    assert {"noop", "noop_2", "rcpt", "rcpt_2"} <= set(run.perfdata)
    assert server.received[4] == "RCPT TO:<abuse@example.net>"


@pytest.mark.parametrize(
    "args, message",
    [
        (("-C", "NOOP\r\nRCPT TO:<victim@example.org>"), "contains the control character '\\r'"),
        (("-C", "QUIT"), "QUIT is sent by the check itself"),
        (("-C", "data"), "use --data"),
        (("-C", "STARTTLS"), "STARTTLS changes the connection"),
        (("-C", "  "), "--command must not be empty"),
        (("-C", "<hello>"), "is not an SMTP verb"),
        (("-C", "NOOP " + "x" * 600), "longer than 510 bytes"),
        (("-C", "VRFY café"), "--command must be ASCII"),
        (("-R", "^250"), "1 --response (-R) but only 0 --command (-C)"),
        (("-C", "NOOP", "-R", "(unclosed"), "invalid regular expression '(unclosed'"),
        (("--command-expect", "NOOP"), "--command-expect wants CMD=CODES"),
        (("--command-expect", "NOOP=299"), "invalid reply code pattern '299'"),
        (("--expect", "nope=250"), "unknown verb 'nope'"),
    ],
)
def test_bad_commands_are_refused_before_connecting(smtp_server, args, message):
    server = smtp_server()
    run = run_plugin(*server_args(server, *args))
    assert run.returncode == 3, run.stdout
    assert message in run.status
    assert "Traceback" not in run.stdout + run.stderr
    assert server.connections == 0
