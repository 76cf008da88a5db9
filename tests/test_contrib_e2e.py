"""End to end: a real Icinga 2 and a real Nagios 4 run the shipped definitions.

Each scheduler loads contrib/ unchanged, with its plugin directory pointing
at wrappers of this checkout (tests/schedulers.py), checks a test SMTP server
that answers RCPT with 451, goes HARD CRITICAL and runs notify_sms_mail,
which must deliver one SMS mail to a second test server standing in for the
carrier's gateway.  A reminder inside the throttle window is dropped; the
server is fixed, the service recovers and exactly one RECOVERY follows.

Every wait is for an observable event (a mail at the gateway, a plugin run
recorded by the wrappers) with a deadline; the scheduler is stopped with its
whole process group and the test fails if anything it started survives.
"""

from __future__ import annotations

import email
import email.policy
import re
import shlex
import subprocess
import time
from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path

import pytest

from tests.schedulers import (
    CONTRIB,
    FAST_SCHEDULING,
    NAGIOS_TIMEPERIOD,
    Icinga2,
    Nagios,
    Scheduler,
    as_localhost,
    icinga2_config,
    running,
    write_wrappers,
)
from tests.smtpd import Script, SMTPTestServer

PAGER = "0400000000@sms.test"
SENDER = "monitoring@example.net"
PROBE_FROM = "probe@example.net"
PROBE_RCPT = "postmaster@example.net"
FAILURE = "451 4.3.0 temporary failure"
BUDGET = 50.0
"""Seconds one scheduler's whole scenario may take (start to stop)."""


@pytest.fixture
def servers() -> Iterator[tuple[SMTPTestServer, SMTPTestServer]]:
    """(the monitored server, refusing RCPT with 451; the SMS gateway, accepting all)."""
    monitored = SMTPTestServer(Script(replies={"RCPT": FAILURE})).start()
    gateway = SMTPTestServer(Script()).start()
    try:
        yield monitored, gateway
    finally:
        monitored.stop()
        gateway.stop()
    errors = monitored.errors + gateway.errors
    assert not errors, f"the test SMTP servers themselves failed: {errors!r}"


def read(message: bytes) -> tuple[EmailMessage, str]:
    """The parsed mail, and its subject and body as one text to search."""
    parsed = email.message_from_bytes(message, policy=email.policy.default)
    assert isinstance(parsed, EmailMessage)
    body = parsed.get_body(preferencelist=("plain",))
    text = str(parsed["Subject"]) + "\n" + (body.get_content() if body is not None else "")
    return parsed, text


def notifier_runs(scheduler: Scheduler, kind: str) -> list[dict[str, object]]:
    return [
        run
        for run in scheduler.runs("notify_sms_mail")
        if "--type" in run["argv"]  # type: ignore[operator]
        and run["argv"][run["argv"].index("--type") + 1] == kind  # type: ignore[attr-defined,index]
    ]


def scenario(
    scheduler: Scheduler, monitored: SMTPTestServer, gateway: SMTPTestServer
) -> dict[str, str]:
    """The story of the issue, told against one running scheduler; returns the two texts."""
    started = time.monotonic()

    # The check fails at RCPT: HARD CRITICAL at once (max_check_attempts 1), PROBLEM SMS.
    scheduler.wait_for(lambda: gateway.messages, "the PROBLEM SMS at the gateway")
    problem, problem_text = read(gateway.messages[0].data)
    assert gateway.messages[0].rcpt_tos == [PAGER]
    assert problem["To"] == PAGER
    for expected in ("PROBLEM", "mx1", "smtp-verbs", "CRITICAL", "RCPT", "451"):
        assert expected in problem_text, f"{expected!r} missing from the SMS:\n{problem_text}"
    check_runs = scheduler.runs("check_smtp_verbs")
    assert check_runs[0]["exit"] == 2
    argv = check_runs[0]["argv"]
    for option, value in (
        ("-H", "127.0.0.1"),
        ("-p", str(monitored.port)),
        ("-f", PROBE_FROM),
        ("--rcpt", PROBE_RCPT),
    ):
        assert argv[argv.index(option) + 1] == value, argv

    # The scheduler reminds while the problem lasts; inside the throttle window
    # the notifier drops the reminder (and says so by exiting 0, not failing).
    scheduler.wait_for(
        lambda: len(notifier_runs(scheduler, "PROBLEM")) >= 2, "a PROBLEM reminder to run"
    )
    assert [run["exit"] for run in notifier_runs(scheduler, "PROBLEM")][:2] == [0, 0]
    assert len(gateway.messages) == 1, "a reminder inside the throttle window was sent"

    # The server is fixed: the service recovers, exactly one RECOVERY SMS.
    monitored.script = Script()
    scheduler.wait_for(lambda: len(gateway.messages) >= 2, "the RECOVERY SMS at the gateway")
    recovery, recovery_text = read(gateway.messages[1].data)
    for expected in ("RECOVERY", "mx1", "smtp-verbs", "OK"):
        assert expected in recovery_text, f"{expected!r} missing from the SMS:\n{recovery_text}"
    assert recovery["Message-ID"] != problem["Message-ID"]
    assert re.search(r"\b[1-9]\d* suppressed since", recovery_text), recovery_text
    ok_checks = len([run for run in scheduler.runs("check_smtp_verbs") if run["exit"] == 0])
    scheduler.wait_for(
        lambda: (
            len([r for r in scheduler.runs("check_smtp_verbs") if r["exit"] == 0]) >= ok_checks + 2
        ),
        "two more OK checks after the recovery",
    )
    assert len(gateway.messages) == 2, [read(m.data)[1] for m in gateway.messages]
    assert len(notifier_runs(scheduler, "RECOVERY")) == 1
    assert time.monotonic() - started < BUDGET
    return {"problem": problem_text, "recovery": recovery_text}


# --- Icinga 2 --------------------------------------------------------------

ICINGA2_SCENARIO = """
const NodeName = "localhost"
object CheckerComponent "checker" { }
object NotificationComponent "notification" { }

template Host "generic-host" {
  check_command = "dummy"
  max_check_attempts = 1
  check_interval = 1m
}
template Service "generic-service" {
  max_check_attempts = 1
  check_interval = 2s
  retry_interval = 2s
}
object Host "mx1" {
  import "generic-host"
  address = "127.0.0.1"
}
object User "e2e-phone" {
  pager = "{pager}"
}
apply Service "smtp-verbs" {
  import "generic-service"
  check_command = "smtp_verbs"
  vars.smtp_verbs_port = {port}
  vars.smtp_verbs_from = "{probe_from}"
  vars.smtp_verbs_rcpt = [ "{probe_rcpt}" ]
  vars.smtp_verbs_timeout = "5"
  assign where host.name == "mx1"
}
apply Notification "sms-mail" to Service {
  command = "sms-mail-service-notification"
  users = [ "e2e-phone" ]
  states = [ OK, Warning, Critical, Unknown ]
  types = [ Problem, Recovery ]
  interval = 2s
  vars.sms_mail_from = "{sender}"
  vars.sms_mail_smtp_server = [ "127.0.0.1:{gateway}" ]
  vars.sms_mail_throttle = "1h"
  assign where service.check_command == "smtp_verbs"
}
"""


@pytest.mark.icinga2
def test_icinga2_runs_the_check_and_texts_one_problem_and_one_recovery(
    icinga2_program: str,
    servers: tuple[SMTPTestServer, SMTPTestServer],
    tmp_path: Path,
) -> None:
    monitored, gateway = servers
    icinga2 = Icinga2(tmp_path, icinga2_program)
    scenario_file = tmp_path / "scenario.conf"
    scenario_file.write_text(
        ICINGA2_SCENARIO.replace("{pager}", PAGER)
        .replace("{port}", str(monitored.port))
        .replace("{gateway}", str(gateway.port))
        .replace("{probe_from}", PROBE_FROM)
        .replace("{probe_rcpt}", PROBE_RCPT)
        .replace("{sender}", SENDER)
    )
    icinga2.config.write_text(
        icinga2_config(icinga2.bin_dir, CONTRIB / "icinga2" / "commands.conf", scenario_file)
    )
    validated = icinga2.validate()
    assert validated.returncode == 0, validated.stdout

    with running(icinga2):
        texts = scenario(icinga2, monitored, gateway)

    # Array form: the plugin output reached the notifier untouched, <> included.
    assert f"<{PROBE_RCPT}>" in texts["problem"]
    # The throttle state lives on the notifying node, one file per user.
    state_file = tmp_path / "data" / "notify_sms_mail" / "e2e-phone.json"
    argv = notifier_runs(icinga2, "PROBLEM")[0]["argv"]
    assert argv[argv.index("--state-file") + 1] == str(state_file)  # type: ignore[attr-defined,index]
    assert state_file.exists()


# --- Nagios ----------------------------------------------------------------

NAGIOS_SCENARIO = (
    NAGIOS_TIMEPERIOD
    + """
define contact {
    contact_name                    e2e-phone
    pager                           {pager}
    _SMS_GATEWAY                    127.0.0.1:{gateway}
    _SMS_STATE_FILE                 {state_file}
    service_notification_period     24x7
    host_notification_period        24x7
    service_notification_options    w,u,c,r
    host_notification_options       d,u,r
    service_notification_commands   notify-service-by-sms-mail
    host_notification_commands      notify-host-by-sms-mail
}
define host {
    host_name                       mx1
    address                         127.0.0.1
    max_check_attempts              1
    check_period                    24x7
    notification_period             24x7
    contacts                        e2e-phone
}
define service {
    host_name                       mx1
    service_description             smtp-verbs
    check_command                   check_smtp_verbs!-p {port} -f {probe_from} --rcpt {rcpt} -t 5
    max_check_attempts              1
    check_interval                  2
    retry_interval                  2
    check_period                    24x7
    notification_period             24x7
    notification_interval           2
    contacts                        e2e-phone
}
"""
)


@pytest.mark.nagios
def test_nagios_runs_the_check_and_texts_one_problem_and_one_recovery(
    nagios_program: str,
    servers: tuple[SMTPTestServer, SMTPTestServer],
    tmp_path: Path,
) -> None:
    monitored, gateway = servers
    nagios = Nagios(tmp_path, nagios_program)
    state_file = tmp_path / "state" / "e2e-phone.json"
    scenario_file = tmp_path / "scenario.cfg"
    scenario_file.write_text(
        NAGIOS_SCENARIO.replace("{pager}", PAGER)
        .replace("{port}", str(monitored.port))
        .replace("{gateway}", str(gateway.port))
        .replace("{state_file}", str(state_file))
        .replace("{probe_from}", PROBE_FROM)
        .replace("{rcpt}", PROBE_RCPT)
    )
    nagios.write_config(
        [scenario_file, CONTRIB / "nagios" / "commands.cfg"],
        admin_email=SENDER,
        enable_environment_macros=1,
        **FAST_SCHEDULING,
    )
    validated = nagios.validate()
    assert validated.returncode == 0, validated.stdout

    with running(nagios):
        texts = scenario(nagios, monitored, gateway)

    # The output came through the environment: Nagios would have stripped
    # the < > of "RCPT TO:<...>" from a $SERVICEOUTPUT$ argument.
    assert f"<{PROBE_RCPT}>" in texts["problem"]
    problem_run = notifier_runs(nagios, "PROBLEM")[0]
    assert f"<{PROBE_RCPT}>" in problem_run["env"]["NAGIOS_SERVICEOUTPUT"]  # type: ignore[index]
    assert state_file.exists()


# --- cron and systemd: the standalone mode ---------------------------------


def shipped_standalone_commands() -> dict[str, list[str]]:
    """The command of the cron job and the ExecStart= of the systemd service, as words."""
    cron = [
        line
        for line in (CONTRIB / "cron" / "check_smtp_verbs").read_text().splitlines()
        if line.strip() and not line.lstrip().startswith("#") and "=" not in line.split()[0]
    ]
    assert len(cron) == 1, cron
    service = (CONTRIB / "systemd" / "check-smtp-verbs-sms.service").read_text()
    exec_start = re.search(r"^ExecStart=(.*)$", service, re.M)
    assert exec_start
    return {"cron": shlex.split(cron[0].split(None, 6)[6]), "systemd": shlex.split(exec_start[1])}


def pointed_at(
    words: list[str], bin_dir: Path, state_file: Path, monitored: int, gateway: int
) -> list[str]:
    """The shipped command with its example hosts replaced by the test servers.

    Only values change: every option, the ``--`` and the order stay as shipped.
    The programs are this checkout's wrappers, the state file a temporary one.
    """
    separator = words.index("--")
    replacements = {
        "--smtp-server": f"127.0.0.1:{gateway}",
        "--state-file": str(state_file),
        "-H": "127.0.0.1",
    }
    result = []
    for index, word in enumerate(words):
        previous = words[index - 1] if index else ""
        if index in (0, separator + 1):
            word = str(bin_dir / Path(word).name)
        elif previous in replacements:
            word = replacements[previous]
        result.append(word)
    return [*result, "-p", str(monitored)]


@pytest.mark.parametrize("source", ["cron", "systemd"])
def test_the_shipped_standalone_command_texts_one_problem_then_one_recovery(
    source: str,
    servers: tuple[SMTPTestServer, SMTPTestServer],
    tmp_path: Path,
) -> None:
    """What cron or the timer runs every 5 minutes, run three times by hand."""
    monitored, gateway = servers
    bin_dir = tmp_path / "bin"
    write_wrappers(bin_dir, tmp_path / "runs.jsonl")
    command = pointed_at(
        shipped_standalone_commands()[source],
        bin_dir,
        tmp_path / "state" / "sms-throttle.json",
        monitored.port,
        gateway.port,
    )
    env = {"PATH": f"{bin_dir}:/usr/bin:/bin", "LC_ALL": "C.UTF-8"}

    def run() -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            as_localhost(command),
            capture_output=True,
            text=True,
            timeout=60,
            env=env,
            cwd=tmp_path,
            stdin=subprocess.DEVNULL,
        )

    first = run()
    assert len(gateway.messages) == 1, first.stdout + first.stderr
    _, text = read(gateway.messages[0].data)
    for expected in ("PROBLEM", "CRITICAL", "RCPT", "451"):
        assert expected in text, f"{expected!r} missing from the SMS:\n{text}"
    assert gateway.messages[0].rcpt_tos == [command[command.index("--to") + 1]]

    second = run()  # five minutes later, still broken: inside the 1h window
    assert len(gateway.messages) == 1, second.stdout + second.stderr

    monitored.script = Script()
    third = run()
    assert len(gateway.messages) == 2, third.stdout + third.stderr
    _, text = read(gateway.messages[1].data)
    assert "RECOVERY" in text, text
    assert third.returncode == 0, third.stdout + third.stderr
