"""The verb-by-verb walk against the project's own SMTP server, over real TCP."""

import re

import pytest

from tests.plugin import run_plugin, server_args

FULL = ("-f", "probe@example.net", "--rcpt", "postmaster@example.net")
PERF_VALUE = re.compile(r"\d+\.\d{6}s(;[^;]*){2};0$")


def test_healthy_server_is_ok_and_lists_every_verb(smtp_server):
    server = smtp_server()
    run = run_plugin(*server_args(server, *FULL))
    assert run.returncode == 0, run.stdout
    assert re.fullmatch(
        rf"SMTP_VERBS OK - 127\.0\.0\.1:{server.port} banner 220, EHLO 250, MAIL 250, "
        r"RCPT 250, QUIT 221 in \d+\.\d{3}s",
        run.status,
    ), run.status
    assert server.received[0].upper().startswith("EHLO ")
    assert [c.split()[0].upper() for c in server.received] == ["EHLO", "MAIL", "RCPT", "QUIT"]
    assert server.received[1].upper() == "MAIL FROM:<PROBE@EXAMPLE.NET>"
    assert server.received[2].upper() == "RCPT TO:<POSTMASTER@EXAMPLE.NET>"


def test_perfdata_has_every_step_in_seconds_rounded_to_the_microsecond(smtp_server):
    run = run_plugin(*server_args(smtp_server(), *FULL))
    assert set(run.perfdata) == {"connect", "banner", "ehlo", "mail", "rcpt", "quit", "total"}
    for label, value in run.perfdata.items():
        assert PERF_VALUE.match(value), (label, value)


def test_reply_codes_are_not_perfdata_but_judged(smtp_server):
    run = run_plugin(*server_args(smtp_server(replies={"MAIL": "250 ok"}), *FULL))
    assert not any("code" in label or "reply" in label for label in run.perfdata)


def test_without_from_or_rcpt_the_walk_is_banner_ehlo_quit_like_check_smtp(smtp_server):
    server = smtp_server()
    run = run_plugin(*server_args(server))
    assert run.returncode == 0
    assert "banner 220, EHLO 250, QUIT 221" in run.status
    assert [c.split()[0].upper() for c in server.received] == ["EHLO", "QUIT"]


def test_rcpt_without_from_uses_the_null_sender(smtp_server):
    server = smtp_server()
    run = run_plugin(*server_args(server, "--rcpt", "postmaster@example.net"))
    assert run.returncode == 0
    assert server.received[1].upper() == "MAIL FROM:<>"


def test_rcpt_451_is_critical_and_names_the_verb(smtp_server):
    server = smtp_server(replies={"RCPT": "451 4.3.0 temporary failure"})
    run = run_plugin(*server_args(server, *FULL))
    assert run.returncode == 2
    assert run.status == (
        "SMTP_VERBS CRITICAL - RCPT TO:<postmaster@example.net> answered 451 "
        "(expected 250,251): 4.3.0 temporary failure"
    )


def test_mail_from_530_is_critical_not_ignored(smtp_server):
    server = smtp_server(replies={"MAIL": "530 5.7.0 Must issue a STARTTLS command first"})
    run = run_plugin(*server_args(server, *FULL))
    assert run.returncode == 2
    assert run.status.startswith("SMTP_VERBS CRITICAL - MAIL FROM:<probe@example.net> answered 530")


def test_banner_554_is_critical(smtp_server):
    run = run_plugin(*server_args(smtp_server(banner="554 5.3.2 no service"), *FULL))
    assert run.returncode == 2
    assert run.status == "SMTP_VERBS CRITICAL - the banner was 554 (expected 220): 5.3.2 no service"


def test_ehlo_reply_is_judged(smtp_server):
    run = run_plugin(*server_args(smtp_server(replies={"EHLO": "421 4.3.2 shutting down"})))
    assert run.returncode == 2
    assert "EHLO" in run.status and "answered 421 (expected 250)" in run.status


def test_walk_stops_at_first_unexpected_reply_and_still_says_quit(smtp_server):
    server = smtp_server(replies={"MAIL": "451 4.3.0 try later"})
    run = run_plugin(*server_args(server, *FULL, "--rcpt", "abuse@example.net"))
    assert run.returncode == 2
    assert [c.split()[0].upper() for c in server.received] == ["EHLO", "MAIL", "QUIT"]
    assert "rcpt" not in run.perfdata and "quit" in run.perfdata


def test_further_recipients_are_timed_as_rcpt_2_and_named_when_they_fail(smtp_server):
    server = smtp_server(rcpt_replies={"abuse@example.net": "550 5.1.1 no such user"})
    run = run_plugin(*server_args(server, *FULL, "--rcpt", "abuse@example.net"))
    assert run.returncode == 2
    assert run.status.startswith("SMTP_VERBS CRITICAL - RCPT TO:<abuse@example.net> answered 550")
    assert {"rcpt", "rcpt_2"} <= set(run.perfdata)


def test_three_recipients_all_ok(smtp_server):
    run = run_plugin(
        *server_args(smtp_server(), *FULL, "--rcpt", "a@example.net", "--rcpt", "b@example.net")
    )
    assert run.returncode == 0
    assert "RCPT 250, RCPT 250, RCPT 250" in run.status
    assert {"rcpt", "rcpt_2", "rcpt_3"} <= set(run.perfdata)


def test_ehlo_502_falls_back_to_helo_once(smtp_server):
    server = smtp_server(replies={"EHLO": "502 5.5.2 unrecognized"})
    run = run_plugin(*server_args(server, *FULL))
    assert run.returncode == 0, run.stdout
    assert "EHLO 502, HELO 250, MAIL 250" in run.status
    assert [c.split()[0].upper() for c in server.received] == [
        "EHLO",
        "HELO",
        "MAIL",
        "RCPT",
        "QUIT",
    ]
    assert {"ehlo", "helo"} <= set(run.perfdata)


def test_failed_helo_after_fallback_is_critical(smtp_server):
    server = smtp_server(replies={"EHLO": "500 5.5.1 what", "HELO": "501 5.5.4 bad name"})
    run = run_plugin(*server_args(server, *FULL))
    assert run.returncode == 2
    assert "HELO" in run.status and "answered 501" in run.status
    assert [c.split()[0].upper() for c in server.received].count("HELO") == 1


def test_helo_only_sends_helo(smtp_server):
    server = smtp_server()
    run = run_plugin(*server_args(server, "--helo-only", "--helo", "probe.example.net", *FULL))
    assert run.returncode == 0
    assert server.received[0].upper() == "HELO PROBE.EXAMPLE.NET"
    assert "banner 220, HELO 250" in run.status


def test_expect_replaces_a_verbs_codes_for_the_origin_scripts_firewall_quirk(smtp_server):
    server = smtp_server(replies={"HELO": "220 firewall says hi"})
    args = server_args(server, "--helo-only", *FULL)
    assert run_plugin(*args).returncode == 2
    assert run_plugin(*args, "--expect", "helo=220,250").returncode == 0


def test_expect_with_classes(smtp_server):
    server = smtp_server(replies={"RCPT": "252 2.1.5 cannot verify but will try"})
    assert run_plugin(*server_args(server, *FULL, "--expect", "rcpt=2xx")).returncode == 0


def test_bare_expect_applies_to_the_banner_like_check_smtp(smtp_server):
    server = smtp_server(banner="221 odd but configured")
    assert run_plugin(*server_args(server, "-e", "221")).returncode == 0


def test_warning_codes_make_transient_failures_warning_everywhere(smtp_server):
    server = smtp_server(replies={"MAIL": "451 4.3.0 try later"})
    run = run_plugin(*server_args(server, *FULL, "--warning-codes", "4xx"))
    assert run.returncode == 1
    assert run.status.startswith("SMTP_VERBS WARNING - MAIL FROM:<probe@example.net> answered 451")


def test_warning_codes_for_one_verb_leave_other_verbs_critical(smtp_server):
    args = (*FULL, "--warning-codes", "rcpt=450,451")
    rcpt = smtp_server(replies={"RCPT": "451 4.3.0 later"})
    assert run_plugin(*server_args(rcpt, *args)).returncode == 1
    mail = smtp_server(replies={"MAIL": "451 4.3.0 later"})
    assert run_plugin(*server_args(mail, *args)).returncode == 2
    rcpt_550 = smtp_server(replies={"RCPT": "550 5.1.1 unknown"})
    assert run_plugin(*server_args(rcpt_550, *args)).returncode == 2


def test_unexpected_quit_reply_alone_is_warning(smtp_server):
    server = smtp_server(replies={"QUIT": "500 5.5.1 what quit"})
    run = run_plugin(*server_args(server, *FULL))
    assert run.returncode == 1
    assert run.status == "SMTP_VERBS WARNING - QUIT answered 500 (expected 221): 5.5.1 what quit"


def test_missing_quit_reply_alone_is_warning(smtp_server):
    server = smtp_server(close_at="QUIT")
    run = run_plugin(*server_args(server, *FULL))
    assert run.returncode == 1
    assert run.status == (
        "SMTP_VERBS WARNING - connection closed by the server while waiting for the QUIT reply"
    )


def test_ignore_quit_failure_makes_it_ok(smtp_server):
    server = smtp_server(replies={"QUIT": "500 5.5.1 what quit"})
    assert run_plugin(*server_args(server, *FULL, "-q")).returncode == 0


def test_quit_problem_does_not_hide_a_rcpt_failure(smtp_server):
    server = smtp_server(replies={"RCPT": "550 5.1.1 unknown", "QUIT": "500 what"})
    run = run_plugin(*server_args(server, *FULL))
    assert run.returncode == 2 and "RCPT TO:" in run.status


def test_server_text_is_sanitised_in_the_status_line(smtp_server):
    server = smtp_server(replies={"RCPT": b"451 4.3.0 a|b \x1b[31mred\r\n"})
    run = run_plugin(*server_args(server, *FULL))
    assert run.returncode == 2
    assert run.status.endswith("4.3.0 a/b \\x1b[31mred")
    assert "warning: removed illegal characters" not in run.stdout


def test_long_server_text_is_cut(smtp_server):
    server = smtp_server(replies={"RCPT": "451 " + "x" * 1000})
    run = run_plugin(*server_args(server, *FULL))
    assert run.returncode == 2
    assert len(run.status) < 260 and run.status.endswith("...")


@pytest.mark.parametrize("family, host", [("-4", "127.0.0.1"), ("-6", "::1")])
def test_address_family_can_be_forced(smtp_server, family, host):
    server = smtp_server(host=host)
    run = run_plugin(family, *server_args(server, *FULL))
    assert run.returncode == 0, run.stdout


def test_forcing_the_other_family_fails_cleanly(smtp_server):
    server = smtp_server(host="::1")
    run = run_plugin("-4", *server_args(server, *FULL))
    assert run.returncode == 2
    assert run.status.startswith("SMTP_VERBS CRITICAL - cannot resolve ::1")
