"""``--extra-opts [SECTION][@FILE]`` in both programs, as monitoring-plugins define it."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from check_smtp_verbs import extra_opts
from check_smtp_verbs.usage import UsageError
from tests.notifier import ADDRESSED, gateway, notify_env, problem, run_notify
from tests.plugin import run_plugin, server_args

CHECK_SECTION = """\
# options shared by every SMTP check
[check_smtp_verbs]
from = probe@example.net
rcpt = postmaster@example.net
rcpt = abuse@example.net
helo = file.example.net
verbose =
"""


@pytest.fixture
def ini(tmp_path: Path):
    def write(text: str, name: str = "plugins.ini") -> Path:
        path = tmp_path / name
        path.write_text(text)
        return path

    return write


def test_the_programs_section_gives_options_and_repeated_keys_repeat(smtp_server, ini):
    server = smtp_server()
    path = ini(CHECK_SECTION)
    run = run_plugin(*server_args(server, "--extra-opts", f"@{path}"))
    assert run.returncode == 0, run.stdout
    assert [line.upper() for line in server.received[:4]] == [
        "EHLO FILE.EXAMPLE.NET",
        "MAIL FROM:<PROBE@EXAMPLE.NET>",
        "RCPT TO:<POSTMASTER@EXAMPLE.NET>",
        "RCPT TO:<ABUSE@EXAMPLE.NET>",
    ]
    assert len(run.lines) > 1  # "verbose =" is a bare --verbose


def test_the_command_line_wins(smtp_server, ini):
    server = smtp_server()
    path = ini(CHECK_SECTION)
    run = run_plugin(*server_args(server, f"--extra-opts=@{path}", "--helo", "cli.example.net"))
    assert run.returncode == 0, run.stdout
    assert server.received[0].upper() == "EHLO CLI.EXAMPLE.NET"


def test_a_named_section_and_the_default_file_from_mp_config_file(smtp_server, ini):
    server = smtp_server()
    path = ini("[submission]\nfrom = other@example.net\n", name="custom.ini")
    run = run_plugin(
        *server_args(server, "--extra-opts", "submission"), env={"MP_CONFIG_FILE": str(path)}
    )
    assert run.returncode == 0, run.stdout
    assert "MAIL FROM:<OTHER@EXAMPLE.NET>" in [line.upper() for line in server.received]


def test_nagios_config_path_is_searched_for_plugins_ini(ini, tmp_path):
    path = ini("[check_smtp_verbs]\nport = 2525\n")
    environ = {"NAGIOS_CONFIG_PATH": f"/nonexistent:{tmp_path}"}
    assert extra_opts.default_file(environ) == str(path)


def test_the_standard_locations_are_monitoring_plugins_own(tmp_path):
    assert extra_opts.DEFAULT_FILES[0] == (
        "/usr/local/etc/monitoring-plugins/monitoring-plugins.ini"
    )
    assert "/etc/nagios/plugins.ini" in extra_opts.DEFAULT_FILES
    assert "/etc/nagios-plugins.ini" in extra_opts.DEFAULT_FILES


@pytest.mark.parametrize(
    "text, locator, message",
    [
        (None, "@/nonexistent/plugins.ini", "cannot read /nonexistent/plugins.ini"),
        ("[other]\nport = 25\n", "@{path}", "no section [check_smtp_verbs] in {path}"),
        ("[check_smtp_verbs]\nno-such-option = 1\n", "@{path}", "unknown option 'no-such-option'"),
        ("[check_smtp_verbs]\nextra-opts = x\n", "@{path}", "unknown option 'extra-opts'"),
        ("port = 25\n", "@{path}", "is not a valid ini file"),
    ],
)
def test_unreadable_file_missing_section_or_unknown_key_is_unknown_with_one_line(
    smtp_server, ini, text, locator, message
):
    server = smtp_server()
    path = ini(text) if text is not None else Path("/nonexistent/plugins.ini")
    run = run_plugin(*server_args(server, "--extra-opts", locator.format(path=path)))
    assert run.returncode == 3
    assert len(run.lines) == 1 and run.status.startswith("SMTP_VERBS UNKNOWN - --extra-opts: ")
    assert message.format(path=path) in run.status
    assert server.connections == 0


def test_a_fifo_as_the_ini_file_is_refused_at_once(smtp_server, tmp_path):
    server = smtp_server()
    fifo = tmp_path / "plugins.ini"
    os.mkfifo(fifo)
    run = run_plugin(*server_args(server, "--extra-opts", f"@{fifo}", "-t", "2"), timeout=20)
    assert run.returncode == 3
    assert f"--extra-opts: {fifo} is not a regular file" in run.status


def test_no_file_in_any_standard_location_is_a_usage_error():
    with pytest.raises(UsageError, match="no config file in any standard location"):
        extra_opts.default_file({"NAGIOS_CONFIG_PATH": "/nonexistent"})


def test_a_password_key_works_and_never_shows(smtp_server, ini):
    server = smtp_server(auth_mechanisms=["PLAIN"], users={"alice@example.net": "s3cret#pass"})
    path = ini(
        "[check_smtp_verbs]\nauth-mech = PLAIN\nauth-user = alice@example.net\n"
        "auth-password = s3cret#pass\nallow-plaintext-auth =\n"
    )
    run = run_plugin(*server_args(server, "--extra-opts", f"@{path}", "-vvv"))
    assert run.returncode == 0, run.stdout
    assert "AUTH 235" in run.status
    assert "s3cret" not in run.stdout + run.stderr


def test_a_password_key_is_scrubbed_from_argument_errors(smtp_server, ini):
    server = smtp_server()
    path = ini("[check_smtp_verbs]\nauth-password = s3cret-value\nrcpt = s3cret-value\n")
    run = run_plugin(*server_args(server, "--extra-opts", f"@{path}"))
    assert run.returncode == 3
    assert "s3cret" not in run.stdout + run.stderr
    assert "<redacted>" in run.status


def test_notifier_reads_its_own_section(smtp_server, tmp_path, ini):
    server = smtp_server()
    path = ini(
        "[notify_sms_mail]\n"
        f"to = {ADDRESSED[1]}\nfrom = {ADDRESSED[3]}\n"
        f"smtp-server = {server.host}:{server.port}\n"
        f"state-file = {tmp_path / 'state.json'}\n"
    )
    run = run_notify("--extra-opts", f"@{path}", *problem(), env=notify_env(tmp_path))
    assert run.returncode == 0, run.stderr
    assert f"RCPT TO:<{ADDRESSED[1]}>".upper() in [line.upper() for line in server.received]


def test_notifier_command_line_wins_over_the_file(smtp_server, tmp_path, ini):
    server = smtp_server()
    path = ini(
        "[alerts]\nto = someone-else@sms.example.net\nsmtp-server = 192.0.2.1:25\n"
        "max-length = 100\n"
    )
    run = run_notify(
        "--extra-opts",
        f"alerts@{path}",
        *ADDRESSED,
        *gateway(server),
        "--state-file",
        str(tmp_path / "state.json"),
        *problem(),
        env=notify_env(tmp_path),
    )
    assert run.returncode == 0, run.stderr
    assert f"RCPT TO:<{ADDRESSED[1]}>".upper() in [line.upper() for line in server.received]


@pytest.mark.parametrize(
    "text, message",
    [
        ("[other]\nto = x@y.z\n", "no section [notify_sms_mail]"),
        ("[notify_sms_mail]\npassword = x\n", "unknown option 'password'"),
    ],
)
def test_notifier_bad_extra_opts_is_exit_3_with_one_line_on_stderr(tmp_path, ini, text, message):
    path = ini(text)
    run = run_notify("--extra-opts", f"@{path}", *problem(), env=notify_env(tmp_path))
    assert run.returncode == 3
    assert run.stderr.startswith("notify_sms_mail: error: --extra-opts: ")
    assert run.stderr.count("\n") == 1 and message in run.stderr
