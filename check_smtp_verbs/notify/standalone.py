"""Standalone mode: run a check and turn its result into a notification.

For hosts without Nagios or Icinga, as the origin script was used from a scheduled
task: ``notify_sms_mail [options] -- check_smtp_verbs -H mx1 ...`` from cron.  A
non-OK result becomes a PROBLEM and an OK a RECOVERY; the throttle then decides, as
for any notification, so an OK after an OK (no PROBLEM delivered) sends nothing.
"""

from __future__ import annotations

import os
import socket
import subprocess
from typing import NamedTuple

STATES = {0: "OK", 1: "WARNING", 2: "CRITICAL", 3: "UNKNOWN"}


class CannotRun(Exception):
    """The check command could not be started at all; a setup error, not a check result."""


class CheckResult(NamedTuple):
    state: str
    output: str  # the first line, without perfdata
    returncode: int | None


def run_check(argv: list[str], timeout: float) -> CheckResult:
    """Run the check as Nagios would: its exit code is the state, line one the output."""
    try:
        done = subprocess.run(
            argv, stdin=subprocess.DEVNULL, capture_output=True, timeout=timeout, check=False
        )
    except subprocess.TimeoutExpired:
        return CheckResult("UNKNOWN", f"{argv[0]} did not finish within {timeout:g}s", None)
    except OSError as exc:
        raise CannotRun(f"cannot run {argv[0]!r}: {exc.strerror or exc}") from None
    output = _first_line(done.stdout) or _first_line(done.stderr)
    if not output:
        output = f"{os.path.basename(argv[0])} exited {done.returncode} without output"
    return CheckResult(STATES.get(done.returncode, "UNKNOWN"), output, done.returncode)


def _first_line(data: bytes) -> str:
    for line in data.decode("utf-8", "backslashreplace").splitlines():
        if line.strip():
            return line.split(" | ")[0].strip()
    return ""


def default_host(argv: list[str]) -> str:
    """The check's ``-H``/``--hostname`` when it has one, else this machine's name."""
    for index, arg in enumerate(argv):
        if arg in ("-H", "--hostname") and index + 1 < len(argv):
            return argv[index + 1]
        for prefix in ("--hostname=", "-H"):
            if arg.startswith(prefix) and len(arg) > len(prefix):
                return arg[len(prefix) :]
    return socket.gethostname()


def default_service(argv: list[str]) -> str:
    """The check's program name: ``check_smtp_verbs`` (also for ``python3 -m check_smtp_verbs``)."""
    name = os.path.basename(argv[0])
    if name.startswith("python") and "-m" in argv[1:-1]:
        return argv[argv.index("-m", 1) + 1]
    return name
