"""Bad input: one clear line, UNKNOWN (3), no traceback, and nothing sent."""

import pytest

from tests.plugin import run_plugin, server_args

BAD = [
    (["--helo", "evil\r\nRSET"], "the HELO name contains the control character '\\r'"),
    (["--from", "a@b.c\nRCPT TO:<x@y.z>"], "--from contains the control character '\\n'"),
    (["--rcpt", "a@b.c\t"], "--rcpt contains the control character '\\t'"),
    (["--rcpt", "not-an-address"], "--rcpt is not a valid mail address: 'not-an-address'"),
    (["--from", "a@@b"], "--from is not a valid mail address"),
    (["--helo", "two words"], "the HELO name must be a domain"),
    (["-p", "0"], "--port must be a number from 1 to 65535, not '0'"),
    (["-p", "smtp"], "--port must be a number from 1 to 65535"),
    (["--expect", "vrfx=250"], "--expect: unknown verb 'vrfx'"),
    (["--expect", "rcpt=25"], "--expect: invalid reply code pattern '25'"),
    (["--expect", "rcpt="], "--expect wants VERB=VALUE"),
    (["--warning-codes", "rcpt=4yz"], "--warning-codes: invalid reply code pattern '4yz'"),
    (["-w", "fast"], "--warning: invalid range 'fast'"),
    (["-c", "10s"], "--critical: invalid range '10s'"),
    (["--verb-warning", "rcpt=2:1"], "--verb-warning: invalid range '2:1'"),
    (["--verb-critical", "nosuch=1"], "--verb-critical: unknown verb 'nosuch'"),
    (["-t", "0"], "--timeout must be a positive number of seconds"),
    (["-t", "ten"], "--timeout: 'ten' is not a number of seconds"),
    (["-t", "10:sometimes"], "--timeout: unknown state 'sometimes'"),
    (["--no-such-option"], "unrecognized arguments: --no-such-option"),
]


@pytest.mark.parametrize("args, message", BAD, ids=[" ".join(a)[:30] for a, _ in BAD])
def test_bad_input_is_unknown_with_one_line_and_nothing_sent(smtp_server, args, message):
    server = smtp_server()
    run = run_plugin(
        *server_args(server, "-f", "probe@example.net", "--rcpt", "postmaster@example.net", *args)
    )
    assert run.returncode == 3
    assert run.lines == [f"SMTP_VERBS UNKNOWN - {run.status[len('SMTP_VERBS UNKNOWN - ') :]}"]
    assert message in run.status
    assert "Traceback" not in run.stdout + run.stderr
    assert server.connections == 0 and server.received == []


def test_missing_host_is_unknown():
    run = run_plugin("--rcpt", "postmaster@example.net")
    assert run.returncode == 3
    assert (
        run.stdout == "SMTP_VERBS UNKNOWN - the following arguments are required: -H/--hostname\n"
    )


def test_help_exits_zero_and_documents_every_option():
    run = run_plugin("--help")
    assert run.returncode == 0
    for option in (
        "--hostname",
        "--port",
        "--from",
        "--rcpt",
        "--expect",
        "--warning-codes",
        "--verb-warning",
        "--verb-critical",
        "--timeout",
        "--helo-only",
        "--fqdn",
        "--ignore-quit-failure",
        "--transcript",
        "-4",
        "-6",
    ):
        assert option in run.stdout


def test_version():
    run = run_plugin("--version")
    assert run.returncode == 0 and run.stdout.startswith("check_smtp_verbs ")
