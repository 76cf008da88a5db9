"""Run notify_sms_mail as Icinga does: a process with arguments and an environment.

Each run gets a clean environment (no NAGIOS_* macros leak in from the caller),
HOME and XDG_STATE_HOME under the test's temp dir, and optionally a fixed clock
through the test-only NOTIFY_SMS_MAIL_TEST_NOW.
"""

from __future__ import annotations

import email
import email.policy
import os
import subprocess
import sys
import time
from email.message import EmailMessage
from pathlib import Path

from tests.plugin import ROOT, Run
from tests.smtpd import Message, SMTPTestServer

COMMAND = "check_smtp_verbs.notify"
TO = "0419999999@sms.example.net"
FROM = "mailserverwarning@example.net"
ADDRESSED = ("--to", TO, "--from", FROM)
T0 = 1_800_000_000.0  # a fixed "now" for throttle tests (2027-01-15 08:00 UTC)


def notify_env(home: Path, now: float | None = None, **extra: str) -> dict[str, str]:
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(home),
        "XDG_STATE_HOME": str(home / "state"),
        "LANG": "C.UTF-8",
        "TZ": "UTC",
    }
    if now is not None:
        env["NOTIFY_SMS_MAIL_TEST_NOW"] = repr(now)
    env.update(extra)
    return env


def run_notify(*args: str, env: dict[str, str], timeout: float = 60) -> Run:
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", COMMAND, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
        env=env,
        stdin=subprocess.DEVNULL,
    )
    return Run(done.returncode, done.stdout, done.stderr, time.monotonic() - started)


def start_notify(*args: str, env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", COMMAND, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        env=env,
        stdin=subprocess.DEVNULL,
    )


def gateway(server: SMTPTestServer) -> list[str]:
    return ["--smtp-server", f"{server.host}:{server.port}"]


def problem(host: str = "mx1", service: str = "smtp-verbs", **options: str) -> list[str]:
    """Macro options of a service PROBLEM; ``options`` override (state="WARNING")."""
    macros = {
        "type": "PROBLEM",
        "host": host,
        "service": service,
        "state": "CRITICAL",
        "output": "SMTP_VERBS CRITICAL - RCPT TO:<postmaster@example.net> answered 451",
    } | options
    return [f"--{name.replace('_', '-')}={value}" for name, value in macros.items()]


def recovery(host: str = "mx1", service: str = "smtp-verbs") -> list[str]:
    return problem(host, service, type="RECOVERY", state="OK", output="SMTP_VERBS OK - all verbs")


def parsed(message: Message) -> EmailMessage:
    """A delivered message as the phone's gateway would parse it."""
    parsed_message = email.message_from_bytes(message.data, policy=email.policy.default)
    assert isinstance(parsed_message, EmailMessage)
    return parsed_message


def sms_text(message: Message) -> str:
    content = parsed(message).get_content()
    assert isinstance(content, str)
    return content.rstrip("\r\n")
