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
    (["--expect", "rcpt=25"], "--expect 'rcpt=25': invalid reply code pattern '25'"),
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
        run.stdout == "SMTP_VERBS UNKNOWN - the following arguments are required: -H/--hostname "
        "(or --mx DOMAIN)\n"
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


BAD_TLS_AUTH = [
    (["-S", "--tls"], "use either -S/--starttls or --tls, not both"),
    (["-S", "--helo-only"], "STARTTLS needs EHLO: drop --helo-only"),
    (["--starttls=sometimes"], "argument -S/--starttls: invalid choice: 'sometimes'"),
    (["--sni", "mx.example.net"], "--sni needs -S/--starttls or --tls"),
    (["--insecure"], "--insecure needs -S/--starttls or --tls"),
    (["-S", "-D", "thirty"], "--certificate-days wants WARN[,CRIT] in days, not 'thirty'"),
    (["-S", "-D", "14,30"], "--certificate-days: CRIT (30) must not exceed WARN (14)"),
    (["-S", "--certificate-days=-1"], "--certificate-days: days must be 0 or more"),
    (["-S", "--tls-min-version", "1.1"], "argument --tls-min-version: invalid choice: '1.1'"),
    (["-S", "--sni", "evil\r\nQUIT"], "--sni: "),
    (["-S", "--ca-file", "/nonexistent/ca.pem"], "--ca-file: cannot read /nonexistent/ca.pem: "),
    (["-S", "--ca-file", "/etc/hostname"], "--ca-file: /etc/hostname holds no PEM certificate"),
    (["-S", "--insecure", "--ca-file", "/etc/hostname"], "--ca-file has no effect with --insecure"),
    (["-S", "-A", "NTLM", "-U", "a", "-P", "pw-123"], "--auth-mech: unknown mechanism 'NTLM'"),
    (["-S", "-A", "PLAIN", "-P", "pw-123"], "AUTH PLAIN needs -U/--auth-user"),
    (["-S", "-A", "PLAIN", "-U", "a"], "AUTH PLAIN needs a secret: --auth-password-file"),
    (["-S", "-U", "a", "-P", "pw-123"], "-U and the AUTH secret need -A/--auth-mech"),
    (["-S", "-A", "PLAIN", "-U", "a\r\nRSET", "-P", "pw-123"], "-U/--auth-user contains a control"),
    (
        ["-S", "-A", "PLAIN", "-U", "a", "--auth-password-file", "/nonexistent/secret"],
        "--auth-password-file: cannot read /nonexistent/secret: No such file or directory",
    ),
    (
        ["-S", "-A", "PLAIN", "-U", "a", "--auth-password-file", "/"],
        "--auth-password-file: / is not a regular file",
    ),
    (
        ["-S", "-A", "PLAIN", "-U", "a", "--auth-password-file", "/dev/null"],
        "--auth-password-file: /dev/null is not a regular file",
    ),
    (
        ["-S", "-A", "PLAIN", "-U", "a", "--auth-password-file", "/dev/zero"],
        "--auth-password-file: /dev/zero is not a regular file",
    ),
    (
        ["-S", "-A", "PLAIN", "-U", "a", "--auth-password-env", "NO_SUCH_VARIABLE_HERE"],
        "--auth-password-env: the environment variable NO_SUCH_VARIABLE_HERE is not set",
    ),
    (
        ["-S", "-A", "PLAIN", "-U", "a", "-P", "pw-123", "--auth-password-env", "HOME"],
        "give the AUTH secret one way only, not --auth-password-env and -P/--auth-password",
    ),
    (
        ["-A", "PLAIN", "-U", "a", "-P", "pw-123"],
        "AUTH without TLS would send the secret in plaintext",
    ),
    (
        ["-A", "PLAIN", "-U", "a", "-P", "pw-123", "--allow-plaintext-auth", "--helo-only"],
        "AUTH needs EHLO",
    ),
]


@pytest.mark.parametrize(
    "args, message", BAD_TLS_AUTH, ids=[" ".join(a)[:40] for a, _ in BAD_TLS_AUTH]
)
def test_bad_tls_and_auth_input_is_unknown_with_one_line_and_nothing_sent(
    smtp_server, args, message
):
    server = smtp_server()
    run = run_plugin(*server_args(server, *args))
    assert run.returncode == 3, run.stdout
    assert len(run.lines) == 1
    assert message in run.status, run.status
    assert "Traceback" not in run.stdout + run.stderr
    assert server.connections == 0
