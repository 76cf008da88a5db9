"""Standalone mode: notify_sms_mail runs the real check and alerts on its result,
as the origin script did from a scheduled task."""

from __future__ import annotations

import sys
from pathlib import Path

from check_smtp_verbs.notify.throttle import StateFile
from tests.notifier import ADDRESSED, T0, TO, gateway, notify_env, run_notify, sms_text


def _check(watched) -> list[str]:
    return [
        "--",
        sys.executable,
        "-m",
        "check_smtp_verbs",
        "-H",
        watched.host,
        "-p",
        str(watched.port),
        "--from",
        "probe@example.net",
        "--rcpt",
        "postmaster@example.net",
        "-t",
        "5",
    ]


def test_broken_then_throttled_then_recovered_then_quiet(smtp_server, tmp_path: Path):
    watched = smtp_server(replies={"RCPT": "451 4.3.0 temporary failure"})
    sms = smtp_server()
    state = tmp_path / "s.json"

    def cron_run(now: float):
        return run_notify(
            *ADDRESSED,
            *gateway(sms),
            "--state-file",
            str(state),
            *_check(watched),
            env=notify_env(tmp_path, now),
        )

    broken = cron_run(T0)
    assert broken.returncode == 0, broken.stderr
    key = f"{watched.host}/check_smtp_verbs"
    assert f"sent PROBLEM for {key} to {TO}" in broken.stdout
    assert sms_text(sms.messages[0]) == (
        f"PROBLEM {key} CRITICAL: SMTP_VERBS CRITICAL - RCPT TO:<postmaster@example.net> "
        "answered 451 (expected 250,251): 4.3.0 temporary failure"
    )

    still_broken = cron_run(T0 + 600)
    assert still_broken.returncode == 0
    assert "throttled" in still_broken.stdout
    assert len(sms.messages) == 1

    watched.script.replies.clear()
    recovered = cron_run(T0 + 1200)
    assert recovered.returncode == 0, recovered.stderr
    assert len(sms.messages) == 2
    assert sms_text(sms.messages[1]).startswith(
        f"RECOVERY {key} OK (1 suppressed since 08:10): SMTP_VERBS OK - "
    )

    quiet = cron_run(T0 + 1800)
    assert quiet.returncode == 0
    assert "no RECOVERY needed" in quiet.stdout
    assert len(sms.messages) == 2
    entries, _ = StateFile(state).load()
    assert entries[key].last_state == "OK"


def test_ok_with_nothing_before_sends_nothing(smtp_server, tmp_path: Path):
    watched, sms = smtp_server(), smtp_server()
    run = run_notify(
        *ADDRESSED,
        *gateway(sms),
        "--state-file",
        str(tmp_path / "s.json"),
        "--host",
        "mx1",
        "--service",
        "smtp",
        *_check(watched),
        env=notify_env(tmp_path, T0),
    )
    assert run.returncode == 0, run.stderr
    assert run.stdout == (
        "notify_sms_mail: not sent: no RECOVERY needed for mx1/smtp: "
        "no PROBLEM was sent since the last recovery\n"
    )
    assert sms.connections == 0


def test_a_hanging_check_is_an_unknown_problem(smtp_server, tmp_path: Path):
    sms = smtp_server()
    run = run_notify(
        *ADDRESSED,
        *gateway(sms),
        "--state-file",
        str(tmp_path / "s.json"),
        "--host",
        "mx1",
        "--service",
        "smtp",
        "--check-timeout",
        "1",
        "--",
        sys.executable,
        "-c",
        "import signal; signal.pause()",
        env=notify_env(tmp_path, T0),
    )
    assert run.returncode == 0, run.stderr
    assert run.seconds < 1 + 5
    text = sms_text(sms.messages[0])
    assert text.startswith("PROBLEM mx1/smtp UNKNOWN: ")
    assert "did not finish within 1s" in text


def test_a_check_without_output_still_says_what_happened(smtp_server, tmp_path: Path):
    sms = smtp_server()
    run = run_notify(
        *ADDRESSED,
        *gateway(sms),
        "--state-file",
        str(tmp_path / "s.json"),
        "--host",
        "mx1",
        "--service",
        "smtp",
        "--",
        sys.executable,
        "-c",
        "raise SystemExit(2)",
        env=notify_env(tmp_path, T0),
    )
    assert run.returncode == 0, run.stderr
    assert sms_text(sms.messages[0]) == (
        f"PROBLEM mx1/smtp CRITICAL: {Path(sys.executable).name} exited 2 without output"
    )
