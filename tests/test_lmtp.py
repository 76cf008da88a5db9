"""-L/--lmtp: LHLO, and with --data one judged reply per recipient after the dot."""

from tests.plugin import run_plugin, server_args

LMTP = ("-L", "-f", "probe@example.net", "--rcpt", "a@example.net", "--rcpt", "b@example.net")


def verbs(server):
    return [c.split()[0].upper() for c in server.received]


def test_lmtp_greets_with_lhlo_and_is_ok(smtp_server):
    server = smtp_server(lmtp=True)
    run = run_plugin(*server_args(server, *LMTP))
    assert run.returncode == 0, run.stdout
    assert "banner 220, LHLO 250, MAIL 250, RCPT 250, RCPT 250, QUIT 221" in run.status
    assert verbs(server) == ["LHLO", "MAIL", "RCPT", "RCPT", "QUIT"]
    assert "lhlo" in run.perfdata and "ehlo" not in run.perfdata


def test_lmtp_data_judges_one_reply_per_recipient_after_the_dot(smtp_server):
    server = smtp_server(lmtp=True)
    run = run_plugin(*server_args(server, *LMTP, "--data", "-v"))
    assert run.returncode == 0, run.stdout
    assert "DATA 354, DOT 250, DOT 250, QUIT 221" in run.status
    assert {"dot", "dot_2"} <= set(run.perfdata)
    assert any(
        line.startswith("OK       end of DATA for <b@example.net> -> 250") for line in run.lines
    )
    assert server.messages[0].rcpt_tos == ["a@example.net", "b@example.net"]
    # both replies are timed from the end of the message, so the second is never shorter
    assert run.seconds_of("dot_2") >= run.seconds_of("dot")


def test_one_recipients_delivery_failing_is_critical_and_names_the_recipient(smtp_server):
    server = smtp_server(lmtp=True, dot_replies={"b@example.net": "452 4.2.2 Mailbox full"})
    run = run_plugin(*server_args(server, *LMTP, "--data"))
    assert run.returncode == 2
    assert run.status == (
        "SMTP_VERBS CRITICAL - end of DATA for <b@example.net> answered 452 (expected 250): "
        "4.2.2 Mailbox full"
    )
    assert verbs(server)[-1] == "QUIT"
    warning = run_plugin(*server_args(server, *LMTP, "--data", "--warning-codes", "dot=4xx"))
    assert warning.returncode == 1


def test_every_reply_after_the_dot_is_read_even_after_a_failed_one(smtp_server):
    server = smtp_server(lmtp=True, dot_replies={"a@example.net": "452 4.2.2 Mailbox full"})
    run = run_plugin(*server_args(server, *LMTP, "--data", "-v"))
    assert run.returncode == 2
    assert run.status.startswith(
        "SMTP_VERBS CRITICAL - end of DATA for <a@example.net> answered 452"
    )
    assert any(
        line.startswith("OK       end of DATA for <b@example.net> -> 250") for line in run.lines
    )
    assert any(line.startswith("OK       QUIT -> 221 2.0.0 Bye") for line in run.lines)


def test_dot_labels_follow_the_recipients_they_answer(smtp_server):
    # a RCPT refused but accepted by --expect gets no reply after the dot (RFC 2033 4.2)
    server = smtp_server(lmtp=True, rcpt_replies={"a@example.net": "550 5.1.1 unknown"})
    run = run_plugin(*server_args(server, *LMTP, "--data", "--expect", "rcpt=250,550"))
    assert run.returncode == 0, run.stdout
    assert "dot_2" in run.perfdata and "dot" not in run.perfdata


def test_smtp_greeting_against_an_lmtp_server_is_critical(smtp_server):
    server = smtp_server(lmtp=True)
    run = run_plugin(*server_args(server, *LMTP[1:]))
    assert run.returncode == 2
    assert "HELO" in run.status and "answered 500" in run.status


def test_lmtp_and_helo_only_exclude_each_other():
    run = run_plugin("-H", "127.0.0.1", "-L", "--helo-only")
    assert run.returncode == 3
    assert "--lmtp and --helo-only exclude each other" in run.status
