"""The plugin against a real MTA: a private Postfix on a loopback port."""

import re

import pytest

from tests.plugin import run_plugin, server_args

pytestmark = pytest.mark.postfix


def check(postfix, *recipients, extra=()):
    args = ["-f", "probe@verbs.test"]
    for recipient in recipients:
        args += ["--rcpt", recipient]
    return run_plugin(*server_args(postfix, *args, *extra))


def test_postfix_accepting_postmaster_is_ok(postfix):
    run = check(postfix, "postmaster@verbs.test")
    assert run.returncode == 0, run.stdout
    assert re.fullmatch(
        rf"SMTP_VERBS OK - 127\.0\.0\.1:{postfix.port} banner 220, EHLO 250, MAIL 250, "
        r"RCPT 250, QUIT 221 in \d\.\d{3}s",
        run.status,
    )


def test_postfix_unknown_user_is_critical_550(postfix):
    run = check(postfix, "nosuchuser@verbs.test")
    assert run.returncode == 2
    assert run.status.startswith(
        "SMTP_VERBS CRITICAL - RCPT TO:<nosuchuser@verbs.test> answered 550 (expected 250,251): "
        "5.1.1 <nosuchuser@verbs.test>: Recipient address rejected"
    )


def test_postfix_temporary_failure_is_critical_451_or_warning_when_told(postfix):
    run = check(postfix, "tempfail@verbs.test")
    assert run.returncode == 2
    assert "RCPT TO:<tempfail@verbs.test> answered 451 (expected 250,251): 4.3.0" in run.status
    assert check(postfix, "tempfail@verbs.test", extra=("--warning-codes", "4xx")).returncode == 1


def test_postfix_refusing_to_relay_is_critical_554(postfix):
    run = check(postfix, "someone@example.org")
    assert run.returncode == 2
    assert "RCPT TO:<someone@example.org> answered 554 (expected 250,251): 5.7.1" in run.status
    assert "Relay access denied" in run.status


def test_postfix_second_recipient_failing_is_named(postfix):
    run = check(postfix, "postmaster@verbs.test", "nosuchuser@verbs.test")
    assert run.returncode == 2
    assert "RCPT TO:<nosuchuser@verbs.test> answered 550" in run.status
    assert {"rcpt", "rcpt_2", "quit"} <= set(run.perfdata)


def test_postfix_transcript_shows_its_multiline_ehlo(postfix):
    run = check(postfix, "postmaster@verbs.test", extra=("-vvv",))
    assert run.returncode == 0
    assert "S: 250-postfix.verbs.test" in run.lines
    assert any(re.fullmatch(r"S: 250 \S+", line) for line in run.lines)
    assert run.lines[-2] == "S: 221 2.0.0 Bye"


def test_postfix_helo_only(postfix):
    run = check(
        postfix, "postmaster@verbs.test", extra=("--helo-only", "--helo", "probe.verbs.test")
    )
    assert run.returncode == 0
    assert "banner 220, HELO 250, MAIL 250, RCPT 250, QUIT 221" in run.status
