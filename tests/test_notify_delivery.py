"""notify_sms_mail delivers into real SMTP servers on loopback: gateways, fallbacks, MX."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest

from tests.dnsd import DNSTestServer
from tests.notifier import (
    ADDRESSED,
    FROM,
    TO,
    gateway,
    notify_env,
    parsed,
    problem,
    run_notify,
    sms_text,
)
from tests.smtpd import SMTPTestServer


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return notify_env(tmp_path)


@pytest.fixture
def state(tmp_path: Path) -> Path:
    return tmp_path / "throttle.json"


def _closed_port() -> int:
    """A port nothing listens on (bound, then released, so the kernel refuses it)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_problem_is_delivered_to_the_gateway_with_the_sms_text(smtp_server, env, state):
    server = smtp_server()
    run = run_notify(
        *ADDRESSED,
        *gateway(server),
        "--state-file",
        str(state),
        *problem(),
        env=env,
    )
    assert run.returncode == 0, run.stderr
    assert run.stderr == ""
    assert f"sent PROBLEM for mx1/smtp-verbs to {TO} via {server.host}:{server.port}" in run.stdout
    [message] = server.messages
    assert message.mail_from == FROM
    assert message.rcpt_tos == [TO]
    mail = parsed(message)
    assert mail["From"] == FROM
    assert mail["To"] == TO
    assert mail["Subject"] == "PROBLEM mx1/smtp-verbs CRITICAL"
    assert mail["Auto-Submitted"] == "auto-generated"
    assert mail["Message-ID"].endswith("@example.net>")
    assert mail["Date"]
    assert sms_text(message) == (
        "PROBLEM mx1/smtp-verbs CRITICAL: "
        "SMTP_VERBS CRITICAL - RCPT TO:<postmaster@example.net> answered 451"
    )
    # QUIT after the accepted message, as a polite MTA does
    assert server.received[-1] == "QUIT"


def test_each_message_gets_its_own_message_id(smtp_server, env, tmp_path):
    server = smtp_server()
    for number in range(2):
        run = run_notify(
            *ADDRESSED,
            *gateway(server),
            "--throttle",
            "0",
            "--state-file",
            str(tmp_path / "s.json"),
            *problem(output=f"run {number}"),
            env=env,
        )
        assert run.returncode == 0, run.stderr
    ids = {parsed(message)["Message-ID"] for message in server.messages}
    assert len(ids) == 2


def test_long_output_is_cut_to_max_length_on_a_character_boundary(smtp_server, env, state):
    server = smtp_server()
    output = "SMTP_VERBS CRITICAL - " + "é" * 300
    run = run_notify(
        *ADDRESSED,
        *gateway(server),
        "--state-file",
        str(state),
        "--max-length",
        "70",
        *problem(output=output),
        env=env,
    )
    assert run.returncode == 0, run.stderr
    text = sms_text(server.messages[0])
    assert len(text) == 70
    assert text.startswith("PROBLEM mx1/smtp-verbs CRITICAL: SMTP_VERBS CRITICAL - éé")
    assert text.endswith("é...")  # all GSM-7: a "…" would make it UCS-2


def test_a_refusing_first_server_falls_back_to_the_second(smtp_server, env, state):
    refusing = smtp_server(replies={"RCPT": "550 5.1.1 no such phone"})
    accepting = smtp_server()
    run = run_notify(
        *ADDRESSED,
        *gateway(refusing),
        *gateway(accepting),
        "--state-file",
        str(state),
        *problem(),
        env=env,
    )
    assert run.returncode == 0, run.stderr
    assert refusing.messages == []
    assert len(accepting.messages) == 1
    assert f"via {accepting.host}:{accepting.port}" in run.stdout


def test_an_unreachable_first_server_falls_back_to_the_second(smtp_server, env, state):
    accepting = smtp_server()
    run = run_notify(
        *ADDRESSED,
        "--smtp-server",
        f"127.0.0.1:{_closed_port()}",
        *gateway(accepting),
        "--state-file",
        str(state),
        *problem(),
        env=env,
    )
    assert run.returncode == 0, run.stderr
    assert len(accepting.messages) == 1


@pytest.mark.parametrize(
    ("fault", "reason"),
    [
        ({"banner": "554 5.7.1 go away"}, "banner 554 5.7.1 go away"),
        ({"replies": {"EHLO": "421 4.3.2 shutting down"}}, "EHLO answered 421"),
        ({"replies": {"MAIL": "451 4.3.0 try later"}}, "MAIL FROM answered 451 4.3.0 try later"),
        ({"replies": {"RCPT": "550 5.1.1 unknown"}}, "RCPT TO answered 550 5.1.1 unknown"),
        ({"replies": {"DATA": "554 5.5.1 no data"}}, "DATA answered 554"),
        ({"replies": {"DOT": "452 4.3.1 full"}}, "the message answered 452 4.3.1 full"),
        ({"close_at": "DATA"}, "connection closed while waiting for the DATA reply"),
    ],
)
def test_a_gateway_refusing_at_any_verb_fails_with_one_line_and_records_nothing(
    smtp_server, env, state, fault, reason
):
    server = smtp_server(**fault)
    run = run_notify(
        *ADDRESSED,
        *gateway(server),
        "--state-file",
        str(state),
        *problem(),
        env=env,
    )
    assert run.returncode == 1
    assert run.stdout == ""
    [line] = run.stderr.splitlines()
    assert line.startswith("notify_sms_mail: not sent: no server accepted the PROBLEM for mx1/")
    assert reason in line
    assert "Traceback" not in run.stderr
    assert server.messages == []
    assert not state.exists() or json.loads(state.read_text())["keys"] == {}


def test_a_hanging_gateway_fails_within_the_timeout(smtp_server, env, state):
    server = smtp_server(silent=True)
    run = run_notify(
        *ADDRESSED,
        *gateway(server),
        "--timeout",
        "1.5",
        "--state-file",
        str(state),
        *problem(),
        env=env,
    )
    assert run.returncode == 1
    assert "timeout after 1.5s waiting for the banner" in run.stderr
    assert run.seconds < 1.5 + 3  # interpreter start-up is the slack
    assert not state.exists()


def test_a_hanging_first_gateway_leaves_time_for_the_second(smtp_server, env, state):
    hanging = smtp_server(silent=True)
    accepting = smtp_server()
    run = run_notify(
        *ADDRESSED,
        *gateway(hanging),
        *gateway(accepting),
        "--timeout",
        "2",
        "--state-file",
        str(state),
        *problem(),
        env=env,
    )
    assert run.returncode == 0, run.stderr
    assert len(accepting.messages) == 1


def test_gateway_down_then_up_sends_on_the_next_notification(smtp_server, env, state):
    """A failed send must not start the window (the origin script's worst defect)."""
    server = smtp_server(replies={"MAIL": "421 4.3.2 down for maintenance"})
    args = [*ADDRESSED, *gateway(server), "--state-file", str(state), *problem()]
    down = run_notify(*args, env=env)
    assert down.returncode == 1
    assert "421 4.3.2 down for maintenance" in down.stderr
    server.script.replies.clear()  # the gateway is back
    up = run_notify(*args, env=env)
    assert up.returncode == 0, up.stderr
    assert len(server.messages) == 1
    again = run_notify(*args, env=env)
    assert again.returncode == 0
    assert "throttled" in again.stdout
    assert len(server.messages) == 1


def _mx_servers(smtp_server, count: int) -> list[SMTPTestServer]:
    """Test servers on 127.0.0.2, 127.0.0.3, ... sharing one port, as MX hosts do."""
    for _ in range(20):
        first = smtp_server(host="127.0.0.2")
        try:
            others = [
                smtp_server(host=f"127.0.0.{3 + index}", port=first.port)
                for index in range(count - 1)
            ]
        except OSError:  # that port is taken on another address: pick another
            first.stop()
            continue
        return [first, *others]
    pytest.fail("no port free on every 127.0.0.x address")


def test_without_smtp_server_it_delivers_to_the_best_mx_through_the_given_resolver(
    smtp_server, env, state
):
    best, backup = _mx_servers(smtp_server, 2)
    zone = {
        ("sms.example.net", "MX"): ["20 backup.example.net.", "10 best.example.net."],
        ("best.example.net", "A"): ["127.0.0.2"],
        ("backup.example.net", "A"): ["127.0.0.3"],
    }
    with DNSTestServer(zone) as dns:
        run = run_notify(
            *ADDRESSED,
            "--resolver",
            dns.address,
            "--smtp-port",
            str(best.port),
            "--state-file",
            str(state),
            *problem(),
            env=env,
        )
    assert run.returncode == 0, run.stderr
    assert f"via best.example.net[127.0.0.2]:{best.port}" in run.stdout
    assert len(best.messages) == 1
    assert backup.messages == []
    assert ("sms.example.net", "MX") in dns.queries


def test_mx_delivery_falls_through_to_the_next_mx_when_one_refuses(smtp_server, env, state):
    best, backup = _mx_servers(smtp_server, 2)
    best.script.replies["RCPT"] = "451 4.7.1 greylisted"
    zone = {
        ("sms.example.net", "MX"): ["10 best.example.net.", "20 backup.example.net."],
        ("best.example.net", "A"): ["127.0.0.2"],
        ("backup.example.net", "A"): ["127.0.0.3"],
    }
    with DNSTestServer(zone) as dns:
        run = run_notify(
            *ADDRESSED,
            "--resolver",
            dns.address,
            "--smtp-port",
            str(best.port),
            "--state-file",
            str(state),
            *problem(),
            env=env,
        )
    assert run.returncode == 0, run.stderr
    assert best.messages == []
    assert len(backup.messages) == 1
    assert "via backup.example.net[127.0.0.3]" in run.stdout


def test_a_domain_without_mx_is_delivered_to_its_own_address(smtp_server, env, state):
    [host] = _mx_servers(smtp_server, 1)
    with DNSTestServer({("sms.example.net", "A"): ["127.0.0.2"]}) as dns:
        run = run_notify(
            *ADDRESSED,
            "--resolver",
            dns.address,
            "--smtp-port",
            str(host.port),
            "--state-file",
            str(state),
            *problem(),
            env=env,
        )
    assert run.returncode == 0, run.stderr
    assert len(host.messages) == 1


@pytest.mark.parametrize(
    ("zone", "reason"),
    [
        ({}, "sms.example.net does not exist (NXDOMAIN)"),
        (
            {("sms.example.net", "MX"): ["0 ."]},
            "sms.example.net has a null MX (RFC 7505): it declares that it accepts no mail",
        ),
        (
            {
                ("sms.example.net", "MX"): ["10 gone.example.net."],
                ("gone.example.net", "TXT"): ['"x"'],
            },
            "gone.example.net: no A/AAAA record",
        ),
    ],
)
def test_mx_look_up_failures_are_one_line_and_exit_1(env, state, zone, reason):
    with DNSTestServer(zone) as dns:
        run = run_notify(
            *ADDRESSED,
            "--resolver",
            dns.address,
            "--state-file",
            str(state),
            *problem(),
            env=env,
        )
    assert run.returncode == 1
    assert reason in run.stderr
    assert len(run.stderr.splitlines()) == 1


def test_a_silent_dns_server_fails_within_the_timeout(env, state):
    with DNSTestServer() as dns:
        dns.silent = True
        run = run_notify(
            *ADDRESSED,
            "--resolver",
            dns.address,
            "--timeout",
            "1",
            "--state-file",
            str(state),
            *problem(),
            env=env,
        )
    assert run.returncode == 1
    assert "waiting for the MX records of sms.example.net" in run.stderr
    assert run.seconds < 1 + 3


def test_a_gateway_without_esmtp_gets_helo(smtp_server, env, state):
    server = smtp_server(replies={"EHLO": "502 5.5.2 Error: command not recognized"})
    run = run_notify(
        *ADDRESSED,
        *gateway(server),
        "--helo",
        "alerts.example.net",
        "--state-file",
        str(state),
        *problem(),
        env=env,
    )
    assert run.returncode == 0, run.stderr
    assert server.received[:2] == ["EHLO alerts.example.net", "HELO alerts.example.net"]
    assert len(server.messages) == 1
