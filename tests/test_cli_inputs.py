"""Files, secrets, ports, deadlines and long option lists: read safely by both programs.

A FIFO or /dev/zero where a password or CA file belongs must not hang the run past
its deadline or eat memory; ``²`` is not a port; a deadline of 3e9 seconds is a typo,
not an OverflowError; a password typed where the notifier has no such option must
not be echoed into the scheduler's log; and 20 000 recipients parse in one pass.
"""

from __future__ import annotations

import ipaddress
import os
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from check_smtp_verbs import cli, inputs
from check_smtp_verbs.notify import cli as notify_cli
from check_smtp_verbs.usage import UsageError
from tests.notifier import ADDRESSED, gateway, notify_env, problem, run_notify
from tests.plugin import run_plugin, server_args


@pytest.fixture
def fifo(tmp_path: Path) -> str:
    """A named pipe nobody ever writes to: open() without O_NONBLOCK waits forever."""
    path = tmp_path / "fifo"
    os.mkfifo(path)
    return str(path)


def _unknown_one_line(run, message: str) -> None:
    assert run.returncode == 3, run.stdout + run.stderr
    assert len(run.lines) == 1 and run.status.startswith("SMTP_VERBS UNKNOWN - ")
    assert message in run.status
    assert "Traceback" not in run.stdout + run.stderr


@pytest.mark.parametrize("where", ["fifo", "/dev/zero"])
def test_check_password_file_that_is_a_fifo_or_device_is_refused_at_once(smtp_server, fifo, where):
    server = smtp_server()
    path = fifo if where == "fifo" else where
    args = ["-S", "-A", "PLAIN", "-U", "a", "--auth-password-file", path, "-t", "2"]
    run = run_plugin(*server_args(server, *args), timeout=20)
    _unknown_one_line(run, f"--auth-password-file: {path} is not a regular file")
    assert server.connections == 0


@pytest.mark.parametrize("where", ["fifo", "/dev/zero"])
def test_check_ca_file_that_is_a_fifo_or_device_is_refused_at_once(smtp_server, fifo, where):
    server = smtp_server()
    path = fifo if where == "fifo" else where
    run = run_plugin(*server_args(server, "-S", "--ca-file", path, "-t", "2"), timeout=20)
    _unknown_one_line(run, f"--ca-file: {path} is not a regular file")
    assert server.connections == 0


def test_check_password_file_longer_than_16_kib_is_refused(smtp_server, tmp_path):
    server = smtp_server()
    secret = tmp_path / "secret"
    secret.write_text("x" * (inputs.MAX_SECRET + 1) + "\n")
    args = ["-S", "-A", "PLAIN", "-U", "a", "--auth-password-file", str(secret)]
    run = run_plugin(*server_args(server, *args))
    _unknown_one_line(run, "is longer than 16384 bytes")


def test_password_file_gives_its_first_line_without_the_line_ending(tmp_path):
    secret = tmp_path / "secret"
    secret.write_bytes("pässword\r\nsecond line\n".encode())
    assert inputs.secret_from_file(str(secret)) == "pässword"


def test_password_file_that_is_not_utf8_is_refused(tmp_path):
    secret = tmp_path / "secret"
    secret.write_bytes(b"\xff\xfe\n")
    with pytest.raises(UsageError, match="is not UTF-8 text"):
        inputs.secret_from_file(str(secret))


@pytest.mark.parametrize(
    "option",
    ["--auth-password-file", "--tls-ca"],
)
@pytest.mark.parametrize("where", ["fifo", "/dev/zero"])
def test_notifier_files_that_are_a_fifo_or_device_are_refused_at_once(
    smtp_server, tmp_path, fifo, option, where
):
    server = smtp_server()
    path = fifo if where == "fifo" else where
    auth = ["--auth-user", "alerts"] if option == "--auth-password-file" else []
    run = run_notify(
        *ADDRESSED,
        *gateway(server),
        *auth,
        option,
        path,
        "-t",
        "2",
        *problem(),
        env=notify_env(tmp_path),
        timeout=20,
    )
    assert run.returncode == 3
    assert run.stderr == f"notify_sms_mail: error: {option}: {path} is not a regular file\n"
    assert server.connections == 0


@pytest.mark.parametrize(
    "args, message",
    [
        (["-p", "²"], "--port must be a number from 1 to 65535, not '²'"),
        (["-p", "٢٥"], "--port must be a number from 1 to 65535, not '٢٥'"),
        (["-t", "1e10"], "--timeout must be at most 86400 seconds, not '1e10'"),
        (["-t", "3e9"], "--timeout must be at most 86400 seconds, not '3e9'"),
        (["-t", "3e9:warning"], "--timeout must be at most 86400 seconds, not '3e9'"),
        (["--resolver", "127.0.0.1:²"], "--resolver port must be a number from 1 to 65535"),
        (["--proxy", "--proxy-source", "192.0.2.1:²"], "--proxy-source port must be a number"),
    ],
)
def test_check_refuses_non_ascii_digits_and_huge_timeouts_with_one_line(smtp_server, args, message):
    server = smtp_server()
    run = run_plugin(*server_args(server, *args))
    _unknown_one_line(run, message)
    assert "internal error" not in run.stdout and "Overflow" not in run.stdout


@pytest.mark.parametrize(
    "args, message",
    [
        (["--smtp-port", "²"], "--smtp-port must be a number from 1 to 65535, not '²'"),
        (["--max-length", "²"], "--max-length must be a number from 20 to 900, not '²'"),
        (["--smtp-server", "127.0.0.1:²"], "--smtp-server port must be a number from 1"),
        (["-t", "1e10"], "--timeout must be at most 86400 seconds, not '1e10'"),
        (["--check-timeout", "3e9"], "--check-timeout must be at most 86400 seconds"),
    ],
)
def test_notifier_refuses_non_ascii_digits_and_huge_timeouts_with_one_line(tmp_path, args, message):
    run = run_notify(*ADDRESSED, *args, *problem(), env=notify_env(tmp_path))
    assert run.returncode == 3
    assert run.stderr.count("\n") == 1 and message in run.stderr
    assert "internal error" not in run.stderr


@pytest.mark.parametrize(
    "args",
    [
        ["-P", "hunter2-s3cret"],
        ["-Phunter2-s3cret"],
        ["--auth-password=hunter2-s3cret"],
        ["--auth-password", "hunter2-s3cret"],
        ["--authpass", "hunter2-s3cret"],
    ],
)
def test_notifier_never_echoes_a_password_given_to_an_option_it_lacks(tmp_path, args):
    run = run_notify(*ADDRESSED, *args, *problem(), env=notify_env(tmp_path))
    assert run.returncode == 3
    assert run.stderr.startswith("notify_sms_mail: error: ") and run.stderr.count("\n") == 1
    assert "hunter2" not in run.stdout + run.stderr


def test_check_never_echoes_a_password_in_an_argument_error(smtp_server):
    server = smtp_server()
    run = run_plugin(*server_args(server, "--authpass=hunter2-s3cret", "--no-such-option"))
    assert run.returncode == 3
    assert "hunter2" not in run.stdout + run.stderr


def test_default_helo_is_one_function_for_both_programs():
    assert cli.inputs.default_helo is notify_cli.inputs.default_helo
    assert inputs.default_helo()  # this host's name, or localhost


@pytest.mark.parametrize(
    "text, wanted",
    [
        ("mx.example.net", ("mx.example.net", 25)),
        ("mx.example.net:587", ("mx.example.net", 587)),
        ("[2001:db8::1]:2525", ("2001:db8::1", 2525)),
        ("2001:db8::1", ("2001:db8::1", 25)),
        ("[::1]", ("::1", 25)),
    ],
)
def test_host_port_takes_names_addresses_and_bracketed_ipv6(text, wanted):
    assert inputs.host_port(text, 25, "--smtp-server") == wanted


@pytest.mark.parametrize("text", ["mx:0", "mx:65536", "mx:²", "[::1", "[::1]x", "bad host:25"])
def test_host_port_refuses_with_one_line(text):
    with pytest.raises(UsageError) as caught:
        inputs.host_port(text, 25, "--smtp-server")
    assert str(caught.value).startswith("--smtp-server") and "\n" not in str(caught.value)


@pytest.mark.parametrize("value", ["@", "@0:", "@~:", ""])
def test_ranges_that_would_always_alert_or_are_empty_are_refused(smtp_server, value):
    server = smtp_server()
    run = run_plugin(*server_args(server, "-w", value))
    _unknown_one_line(run, f"--warning: invalid range {value!r}")


def test_twenty_thousand_recipients_parse_in_order_and_in_one_pass():
    """argparse rescans every option position per option (quadratic); Parser collects
    repeatable options first, so argparse itself sees none of the 20 000."""
    recipients = [f"user{n}@example.net" for n in range(20_000)]
    argv = ["-H", "127.0.0.1", *(x for r in recipients for x in ("--rcpt", r))]
    parser = cli.build_parser()
    rest, collected = parser._take_appends(argv)  # type: ignore[attr-defined]
    assert rest == ["-H", "127.0.0.1"]
    assert collected["recipients"] == recipients
    settings = cli.settings_from([*argv, "--quit-after", "rcpt"])
    assert settings.recipients == tuple(recipients)


def test_repeatable_options_keep_command_line_order_across_spellings():
    settings = cli.settings_from(
        ["-H", "127.0.0.1", "-C", "NOOP", "--command-expect=VRFY x=252", "--command", "RSET"]
    )
    assert [c.verb for c in settings.commands] == ["noop", "vrfy", "rset"]


@given(
    st.ip_addresses(v=4) | st.ip_addresses(v=6).filter(lambda a: a.ipv4_mapped is None),
    st.none() | st.integers(min_value=0, max_value=65535),
)
def test_ip_port_round_trips(address, port):
    text = f"[{address}]" if address.version == 6 else str(address)
    if port is not None:
        text += f":{port}"
    assert inputs.ip_port(text, "--proxy-source") == (str(address), port)


@given(st.text(max_size=40))
def test_ip_port_is_parsed_or_refused_with_one_line(text):
    try:
        address, port = inputs.ip_port(text, "--proxy-source")
    except UsageError as exc:
        assert str(exc).startswith("--proxy-source") and "\n" not in str(exc)
    else:
        ipaddress.ip_address(address)
        assert port is None or 0 <= port <= 65535
