"""What users read: -v per-verb lines, -vvv transcript, thresholds on times."""

import re

from tests.plugin import run_plugin, server_args

FULL = ("-f", "probe@example.net", "--rcpt", "postmaster@example.net")


def test_verbose_prints_one_line_per_verb_with_sent_command_code_text_and_time(smtp_server):
    server = smtp_server(replies={"RCPT": "451 4.3.0 later"})
    run = run_plugin(*server_args(server, *FULL, "-v"))
    assert run.returncode == 2
    body = run.lines[1:]
    assert re.fullmatch(
        r"OK +MAIL FROM:<probe@example.net> -> 250 2\.1\.0 Ok \(\d\.\d{6}s\)", body[3]
    )
    assert re.fullmatch(
        r"CRITICAL RCPT TO:<postmaster@example.net> -> 451 4\.3\.0 later \(\d\.\d{6}s\)", body[4]
    )
    assert body[5].startswith("OK       QUIT -> 221")
    assert run.lines[-1].startswith("| ")
    assert "transcript:" not in run.stdout


def test_triple_verbose_adds_the_whole_conversation(smtp_server):
    server = smtp_server()
    run = run_plugin(*server_args(server, *FULL, "-vvv"))
    assert run.returncode == 0
    transcript = run.lines[run.lines.index("transcript:") + 1 : -1]
    assert transcript[0].startswith("*: connected to 127.0.0.1:")
    assert transcript[1] == "S: 220 smtpd.test ESMTP test server"
    assert transcript[2].startswith("C: EHLO ")
    assert "S: 250-smtpd.test" in transcript
    assert "C: RCPT TO:<postmaster@example.net>" in transcript
    assert transcript[-2:] == ["C: QUIT", "S: 221 2.0.0 Bye"]


def test_transcript_option_is_the_same_as_vvv(smtp_server):
    run = run_plugin(*server_args(smtp_server(), "--transcript"))
    assert "transcript:" in run.lines


def test_total_time_thresholds_are_check_smtp_compatible(smtp_server):
    server = smtp_server(delays={"RCPT": 0.3})
    warn = run_plugin(*server_args(server, *FULL, "-w", "0.2", "-c", "5"))
    assert warn.returncode == 1
    assert re.fullmatch(
        r"SMTP_VERBS WARNING - the whole conversation took 0\.\d{3}s \(outside range 0:0\.2\)",
        warn.status,
    )
    assert warn.perfdata["total"].endswith(";0.2;5;0")
    crit = run_plugin(*server_args(server, *FULL, "-w", "0.1", "-c", "0.2"))
    assert crit.returncode == 2


def test_per_verb_thresholds_name_the_slow_verb(smtp_server):
    server = smtp_server(delays={"RCPT": 0.3})
    run = run_plugin(
        *server_args(server, *FULL, "--verb-warning", "rcpt=0.2", "--verb-critical", "mail=0.2")
    )
    assert run.returncode == 1
    assert re.fullmatch(
        r"SMTP_VERBS WARNING - RCPT TO:<postmaster@example.net> took 0\.3\d\ds "
        r"\(outside range 0:0\.2\)",
        run.status,
    )
    assert run.perfdata["rcpt"].endswith(";0.2;;0")
    assert run.perfdata["mail"].endswith(";;0.2;0")


def test_delayed_verb_time_reflects_the_delay(smtp_server):
    run = run_plugin(*server_args(smtp_server(delays={"MAIL": 0.25}), *FULL))
    assert 0.25 <= run.seconds_of("mail") < 0.5
    assert run.seconds_of("rcpt") < 0.2
