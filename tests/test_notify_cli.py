"""notify_sms_mail's interface: macros from options or Nagios's environment, --dry-run,
and bad input that ends in one line and exit 3 before anything is sent."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.notifier import (
    ADDRESSED,
    FROM,
    T0,
    TO,
    gateway,
    notify_env,
    parsed,
    problem,
    run_notify,
    sms_text,
)


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return notify_env(tmp_path, T0)


def test_service_macros_come_from_the_nagios_environment(smtp_server, tmp_path):
    server = smtp_server()
    env = notify_env(
        tmp_path,
        NAGIOS_NOTIFICATIONTYPE="PROBLEM",
        NAGIOS_HOSTNAME="mx1",
        NAGIOS_SERVICEDESC="smtp-verbs",
        NAGIOS_SERVICESTATE="WARNING",
        NAGIOS_SERVICEOUTPUT="SMTP_VERBS WARNING - RCPT TO answered 451",
        NAGIOS_LONGSERVICEOUTPUT="OK connect\nWARNING RCPT",
        NAGIOS_HOSTSTATE="UP",
    )
    run = run_notify(*ADDRESSED, *gateway(server), env=env)
    assert run.returncode == 0, run.stderr
    assert sms_text(server.messages[0]) == (
        "PROBLEM mx1/smtp-verbs WARNING: SMTP_VERBS WARNING - RCPT TO answered 451 "
        "OK connect WARNING RCPT"
    )


def test_host_macros_are_used_without_a_service_and_options_win(smtp_server, tmp_path):
    server = smtp_server()
    env = notify_env(
        tmp_path,
        NAGIOS_NOTIFICATIONTYPE="PROBLEM",
        NAGIOS_HOSTNAME="mx1",
        NAGIOS_HOSTSTATE="DOWN",
        NAGIOS_HOSTOUTPUT="PING CRITICAL - Packet loss = 100%",
    )
    run = run_notify(*ADDRESSED, *gateway(server), "--host", "mx1.example", env=env)
    assert run.returncode == 0, run.stderr
    assert "sent PROBLEM for mx1.example to" in run.stdout
    assert parsed(server.messages[0])["Subject"] == "PROBLEM mx1.example DOWN"
    assert sms_text(server.messages[0]) == (
        "PROBLEM mx1.example DOWN: PING CRITICAL - Packet loss = 100%"
    )


def test_default_state_file_is_under_xdg_state_home_and_created(smtp_server, tmp_path):
    server = smtp_server()
    run = run_notify(*ADDRESSED, *gateway(server), *problem(), env=notify_env(tmp_path))
    assert run.returncode == 0, run.stderr
    state = tmp_path / "state" / "check_smtp_verbs" / "notify_sms_mail.json"
    assert "mx1/smtp-verbs" in json.loads(state.read_text())["keys"]
    assert (state.parent.stat().st_mode & 0o777) == 0o700


def test_state_directory_from_systemd_wins(smtp_server, tmp_path):
    server = smtp_server()
    env = notify_env(tmp_path, STATE_DIRECTORY=str(tmp_path / "systemd"))
    run = run_notify(*ADDRESSED, *gateway(server), *problem(), env=env)
    assert run.returncode == 0, run.stderr
    assert (tmp_path / "systemd" / "notify_sms_mail.json").exists()


def test_dry_run_prints_message_and_decision_and_neither_sends_nor_records(
    smtp_server, tmp_path, env
):
    server = smtp_server()
    state = tmp_path / "s.json"
    run = run_notify(
        *ADDRESSED,
        *gateway(server),
        "--state-file",
        str(state),
        "--dry-run",
        *problem(),
        env=env,
    )
    assert run.returncode == 0, run.stderr
    lines = run.stdout.splitlines()
    assert lines[0] == (
        "notify_sms_mail: dry run: would send PROBLEM for mx1/smtp-verbs: "
        "first PROBLEM for mx1/smtp-verbs"
    )
    assert f"To: {TO}" in lines
    assert "Subject: PROBLEM mx1/smtp-verbs CRITICAL" in lines
    assert lines[-1] == (
        "PROBLEM mx1/smtp-verbs CRITICAL: "
        "SMTP_VERBS CRITICAL - RCPT TO:<postmaster@example.net> answered 451"
    )
    assert server.connections == 0
    assert not state.exists()


def test_dry_run_shows_a_throttled_decision(smtp_server, tmp_path, env):
    server = smtp_server()
    args = [*ADDRESSED, *gateway(server), "--state-file", str(tmp_path / "s.json")]
    assert run_notify(*args, *problem(), env=env).returncode == 0
    run = run_notify(*args, "--dry-run", *problem(), env=env)
    assert run.stdout.startswith(
        "notify_sms_mail: dry run: would not send PROBLEM for mx1/smtp-verbs: throttled: "
    )
    assert len(server.messages) == 1


def test_types_not_wanted_are_not_sent_and_exit_0(smtp_server, tmp_path, env):
    server = smtp_server()
    run = run_notify(
        *ADDRESSED,
        *gateway(server),
        "--state-file",
        str(tmp_path / "s.json"),
        *problem(type="ACKNOWLEDGEMENT"),
        env=env,
    )
    assert run.returncode == 0
    assert run.stdout == (
        "notify_sms_mail: not sent: ACKNOWLEDGEMENT is not among --types PROBLEM,RECOVERY\n"
    )
    assert server.connections == 0
    wanted = run_notify(
        *ADDRESSED,
        *gateway(server),
        "--state-file",
        str(tmp_path / "s.json"),
        "--types",
        "problem,recovery,acknowledgement",
        *problem(type="ACKNOWLEDGEMENT"),
        env=env,
    )
    assert wanted.returncode == 0, wanted.stderr
    assert len(server.messages) == 1


@pytest.mark.parametrize(
    ("args", "error"),
    [
        (["--from", FROM, *problem()], "--to is required"),
        (["--to", TO, *problem()], "--from is required"),
        (
            ["--to", "not an address", "--from", FROM, *problem()],
            "--to is not a valid mail address",
        ),
        (["--to", "a@b>\r\nRCPT TO:<x@y", "--from", FROM, *problem()], "--to contains the control"),
        (
            [*ADDRESSED, *problem(host="mx1\r\nBcc: victim@example.org")],
            "--host contains the control character '\\r'",
        ),
        ([*ADDRESSED, *problem(service="a\nb")], "--service contains the control"),
        ([*ADDRESSED, *problem(type="PROBLEMS")], "unknown notification type"),
        ([*ADDRESSED, "--types", "PROBLEM,NOPE", *problem()], "--types: unknown"),
        ([*ADDRESSED, "--throttle", "1 week", *problem()], "--throttle wants"),
        ([*ADDRESSED, "--max-length", "5", *problem()], "--max-length must be"),
        ([*ADDRESSED, "--timeout", "-1", *problem()], "--timeout must be"),
        ([*ADDRESSED, "--smtp-server", "gw:99999", *problem()], "--smtp-server"),
        ([*ADDRESSED, "--resolver", "dns.example", *problem()], "IP address"),
        ([*ADDRESSED, "--throttle-key", "user", *problem()], "--throttle-key"),
        ([*ADDRESSED], "no notification type"),
        ([*ADDRESSED, "--type", "PROBLEM"], "no host"),
        ([*ADDRESSED, "--auth-user", "u", *problem()], "--auth-user needs"),
        (
            [
                *ADDRESSED,
                "--auth-user",
                "u",
                "--auth-password-env",
                "NOPE",
                *problem(),
            ],
            "NOPE is not set",
        ),
        ([*ADDRESSED, "--require-tls", "--no-tls", *problem()], "contradict"),
        ([*ADDRESSED, "--bogus", *problem()], "unrecognized arguments: --bogus"),
        ([*ADDRESSED, *problem(), "--"], "nothing after --"),
        ([*ADDRESSED, "--", "/nonexistent/check"], "cannot run '/nonexistent"),
        (
            [*ADDRESSED, "--type", "PROBLEM", "--", "check_smtp_verbs"],
            "--type: in standalone mode these come from the check",
        ),
    ],
)
def test_bad_input_is_one_line_on_stderr_and_exit_3(smtp_server, tmp_path, env, args, error):
    server = smtp_server()
    run = run_notify(*gateway(server), "--state-file", str(tmp_path / "s.json"), *args, env=env)
    assert run.returncode == 3, run
    assert run.stdout == ""
    [line] = run.stderr.splitlines()
    assert line.startswith("notify_sms_mail: error: ")
    assert error in line
    assert server.connections == 0


def test_a_state_directory_that_cannot_be_made_still_sends_the_alert_and_exits_3(
    smtp_server, tmp_path, env
):
    server = smtp_server()
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    run = run_notify(
        *ADDRESSED,
        *gateway(server),
        "--state-file",
        str(blocker / "s.json"),
        *problem(),
        env=env,
    )
    assert run.returncode == 3
    assert len(server.messages) == 1
    assert run.stderr == (
        f"notify_sms_mail: cannot use the state directory {blocker}: it is not a directory; "
        "sending without the throttle\n"
    )
    assert "sent PROBLEM" in run.stdout


def test_the_password_never_appears_in_output(smtp_server, tmp_path, env):
    server = smtp_server()  # offers no STARTTLS: the password must not be sent
    secret = tmp_path / "secret"
    secret.write_text("hunter2-s3cret\n")
    run = run_notify(
        *ADDRESSED,
        *gateway(server),
        "--state-file",
        str(tmp_path / "s.json"),
        "--auth-user",
        "alerts",
        "--auth-password-file",
        str(secret),
        *problem(),
        env=env,
    )
    assert run.returncode == 1
    assert "STARTTLS not offered" in run.stderr
    assert "hunter2" not in run.stdout + run.stderr
    assert not any("hunter2" in line for line in server.received)
    assert not any(line.upper().startswith("AUTH") for line in server.received)


def test_version(env):
    run = run_notify("--version", env=env)
    assert run.returncode == 0
    assert run.stdout.startswith("notify_sms_mail ")
