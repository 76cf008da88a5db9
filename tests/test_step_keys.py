"""Judging one step apart from its verb, and check_smtp's ``-e STRING``.

Every perfdata label of a step (rcpt_2, dot_2, noop_2) is usable wherever a verb
is, and the step's own key wins over its verb's.  A bare ``-e`` that is not a code
pattern is check_smtp's string the banner must contain.
"""

from __future__ import annotations

import nagiosplugin
import pytest

from check_smtp_verbs.cli import settings_from
from check_smtp_verbs.codes import CodeSet
from check_smtp_verbs.usage import UsageError
from tests.plugin import run_plugin, server_args

TWO = ("-f", "probe@example.net", "--rcpt", "postmaster@example.net")
SECOND = "abuse@example.net"


def _two_recipients(server, *more: str) -> list[str]:
    return server_args(server, *TWO, "--rcpt", SECOND, *more)


def test_warning_codes_for_rcpt_2_make_only_the_second_recipient_warning(smtp_server):
    server = smtp_server(rcpt_replies={SECOND: "450 4.2.0 mailbox busy"})
    run = run_plugin(*_two_recipients(server, "--warning-codes", "rcpt_2=4xx"))
    assert run.returncode == 1, run.stdout
    assert run.status.startswith(f"SMTP_VERBS WARNING - RCPT TO:<{SECOND}> answered 450")


def test_warning_codes_for_rcpt_2_do_not_soften_the_first_recipient(smtp_server):
    server = smtp_server(rcpt_replies={"postmaster@example.net": "450 4.2.0 busy"})
    run = run_plugin(*_two_recipients(server, "--warning-codes", "rcpt_2=4xx"))
    assert run.returncode == 2, run.stdout
    assert "RCPT TO:<postmaster@example.net> answered 450" in run.status


def test_the_step_key_wins_over_its_verb_key(smtp_server):
    server = smtp_server(rcpt_replies={SECOND: "450 4.2.0 mailbox busy"})
    run = run_plugin(
        *_two_recipients(server, "--warning-codes", "rcpt=4xx", "--warning-codes", "rcpt_2=5xx")
    )
    assert run.returncode == 2, run.stdout
    assert f"RCPT TO:<{SECOND}> answered 450" in run.status


def test_verb_warning_for_rcpt_2_times_only_that_step(smtp_server):
    server = smtp_server(delays={"RCPT": 0.05})
    run = run_plugin(
        *_two_recipients(server, "--verb-critical", "rcpt=10", "--verb-critical", "rcpt_2=0.01")
    )
    assert run.returncode == 2, run.stdout
    assert run.status.startswith(f"SMTP_VERBS CRITICAL - RCPT TO:<{SECOND}> took ")
    assert run.perfdata["rcpt"].endswith(";;10;0")
    assert run.perfdata["rcpt_2"].endswith(";;0.01;0")


def test_a_step_this_walk_cannot_have_is_refused(smtp_server):
    server = smtp_server()
    run = run_plugin(*_two_recipients(server, "--expect", "rcpt_3=250"))
    assert run.returncode == 3
    assert "--expect: unknown verb 'rcpt_3'" in run.status
    assert server.connections == 0


def test_every_perfdata_step_name_is_a_key():
    settings = settings_from(
        [
            "-H",
            "127.0.0.1",
            *TWO,
            "--rcpt",
            SECOND,
            "--data",
            "-C",
            "NOOP",
            "-C",
            "NOOP",
            "--expect",
            "dot_2=250,452",
            "--warning-codes",
            "rcpt_2=4xx",
            "--verb-warning",
            "noop_2=1",
        ]
    )
    assert settings.expect == {"dot_2": CodeSet.parse("250,452")}
    assert settings.warning_codes == {"rcpt_2": CodeSet.parse("4xx")}
    assert set(settings.time_warning) == {"noop_2"}
    assert settings.step_timed == ("noop_2",)
    with pytest.raises(UsageError, match="unknown verb 'noop_3'"):
        settings_from(["-H", "127.0.0.1", "-C", "NOOP", "-C", "NOOP", "--verb-warning", "noop_3=1"])


def test_expected_for_prefers_the_step_name_then_the_command_then_the_verb():
    settings = settings_from(
        ["-H", "127.0.0.1", *TWO, "--rcpt", SECOND, "-e", "rcpt=250", "-e", "rcpt_2=250,550"]
    )
    assert settings.expected_for("rcpt_2", "rcpt") == CodeSet.parse("250,550")
    assert settings.expected_for("rcpt", "rcpt") == CodeSet.parse("250")
    assert settings.expected_for("mail", "mail") == CodeSet.parse("250")
    with_command = settings_from(["-H", "127.0.0.1", "--command-expect", "VRFY x=252"])
    command = with_command.commands[0]
    assert with_command.expected_for("vrfy", "vrfy", command) == CodeSet.parse("252")


def test_expect_for_rcpt_2_is_honoured_by_the_walk(smtp_server):
    server = smtp_server(rcpt_replies={SECOND: "550 5.1.1 no such user"})
    run = run_plugin(*_two_recipients(server, "--expect", "rcpt_2=550"))
    assert run.returncode == 0, run.stdout


def test_bare_expect_text_found_in_the_banner_is_ok_as_in_check_smtp(smtp_server):
    server = smtp_server()
    run = run_plugin(*server_args(server, "-e", "ESMTP"))
    assert run.returncode == 0, run.stdout


def test_bare_expect_text_missing_from_the_banner_is_warning_as_in_check_smtp(smtp_server):
    server = smtp_server(banner="220 mail.example.net Postfix")
    run = run_plugin(*server_args(server, "-e", "mail.example.org"))
    assert run.returncode == 1, run.stdout
    assert run.status.startswith("SMTP_VERBS WARNING")


def test_expect_state_makes_a_missing_banner_text_critical(smtp_server):
    server = smtp_server(banner="220 mail.example.net Postfix")
    run = run_plugin(*server_args(server, "-e", "ESMTP", "--expect-state", "critical"))
    assert run.returncode == 2, run.stdout


def test_banner_text_judgement_lives_in_the_reply_context():
    from check_smtp_verbs.contexts import ReplyContext
    from check_smtp_verbs.steps import Step, StepResult

    banner = Step("banner", "banner", "banner", "the banner", CodeSet.parse("220"))
    result = StepResult(banner, 220, ("mail.example.net Postfix",), 0.001, expected=True)
    context = ReplyContext({}, banner_text="ESMTP")
    judged = context.evaluate(nagiosplugin.Metric("banner", result, context="reply"), None)
    assert judged.state == nagiosplugin.Warn
    assert judged.hint == "the banner does not contain 'ESMTP': mail.example.net Postfix"


@pytest.mark.parametrize(
    "value, message",
    [
        ("25", "--expect '25': invalid reply code pattern '25'"),
        ("2XX,6xx", "--expect '2XX,6xx': invalid reply code pattern '6xx'"),
        ("rcpt=25x5", "--expect 'rcpt=25x5': invalid reply code pattern '25x5'"),
        ("250,", "--expect '250,': invalid reply code pattern ''"),
    ],
)
def test_truly_bad_code_patterns_are_refused_quoting_the_input(smtp_server, value, message):
    server = smtp_server()
    run = run_plugin(*server_args(server, "-e", value))
    assert run.returncode == 3
    assert message in run.status


def test_expect_state_without_a_banner_text_is_refused(smtp_server):
    server = smtp_server()
    run = run_plugin(*server_args(server, "--expect-state", "critical"))
    assert run.returncode == 3
    assert "--expect-state needs a bare -e TEXT" in run.status
