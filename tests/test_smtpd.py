"""The scripted test server does what its Script says, byte for byte, over real TCP."""

from __future__ import annotations

import ipaddress
import signal
import smtplib
import socket
import struct
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

import pytest

from tests import smtpd
from tests.smtpd import Script, SMTPTestServer, render

ROOT = Path(__file__).resolve().parent.parent
Factory = Callable[..., SMTPTestServer]


@contextmanager
def connect(server: SMTPTestServer) -> Iterator[tuple[socket.socket, BinaryIO]]:
    """A raw connection, for asserting on exact bytes."""
    address = (server.host, server.port)
    with socket.create_connection(address, timeout=5) as sock, sock.makefile("rb") as stream:
        yield sock, stream


def read_reply(stream: BinaryIO) -> bytes:
    """One whole (possibly multi-line) reply, as raw bytes."""
    reply = b""
    while True:
        line = stream.readline()
        reply += line
        if not line or line[3:4] != b"-":
            return reply


def command(sock: socket.socket, stream: BinaryIO, line: str) -> bytes:
    sock.sendall(line.encode() + b"\r\n")
    return read_reply(stream)


def client(server: SMTPTestServer) -> smtplib.SMTP:
    return smtplib.SMTP(server.host, server.port, timeout=5)


def proxy_v2(source: str, dest: str, source_port: int, dest_port: int) -> bytes:
    family = 0x11 if ipaddress.ip_address(source).version == 4 else 0x21
    body = (
        ipaddress.ip_address(source).packed
        + ipaddress.ip_address(dest).packed
        + struct.pack("!HH", source_port, dest_port)
    )
    return smtpd.PROXY_V2_SIGNATURE + bytes([0x21, family]) + struct.pack("!H", len(body)) + body


# --- defaults -------------------------------------------------------------


def test_banner_is_a_220_greeting_by_default(smtp_server: Factory) -> None:
    with connect(smtp_server()) as (_, stream):
        assert stream.readline() == b"220 smtpd.test ESMTP test server\r\n"


def test_ehlo_default_is_a_multiline_reply_of_the_capabilities(smtp_server: Factory) -> None:
    with connect(smtp_server()) as (sock, stream):
        read_reply(stream)
        assert command(sock, stream, "EHLO client.test") == (
            b"250-smtpd.test\r\n250-PIPELINING\r\n250-SIZE 10240000\r\n"
            b"250-8BITMIME\r\n250 ENHANCEDSTATUSCODES\r\n"
        )


def test_capabilities_feed_both_ehlo_and_lhlo(smtp_server: Factory) -> None:
    server = smtp_server(capabilities=["STARTTLS", "AUTH PLAIN"])
    with connect(server) as (sock, stream):
        read_reply(stream)
        expected = b"250-smtpd.test\r\n250-STARTTLS\r\n250 AUTH PLAIN\r\n"
        assert command(sock, stream, "EHLO client.test") == expected
        assert command(sock, stream, "LHLO client.test") == expected


def test_well_behaved_defaults_for_every_normal_verb(smtp_server: Factory) -> None:
    with client(smtp_server()) as smtp:
        assert smtp.helo("client.test") == (250, b"smtpd.test")
        assert smtp.mail("a@client.test") == (250, b"2.1.0 Ok")
        assert smtp.rcpt("b@smtpd.test") == (250, b"2.1.5 Ok")
        assert smtp.docmd("DATA")[0] == 354
        assert smtp.docmd(".") == (250, b"2.0.0 Ok: queued as 4TEST0001")
        assert smtp.rset() == (250, b"2.0.0 Ok")
        assert smtp.noop() == (250, b"2.0.0 Ok")
        assert smtp.verify("b@smtpd.test")[0] == 252
        assert smtp.docmd("EXPN", "list")[0] == 502
        assert smtp.docmd("STARTTLS")[0] == 454
        assert smtp.docmd("AUTH", "PLAIN")[0] == 503
        assert smtp.docmd("XCLIENT", "NAME=x") == (502, b"5.5.2 Error: command not recognized")
        assert smtp.quit() == (221, b"2.0.0 Bye")


def test_quit_replies_221_and_closes_the_connection(smtp_server: Factory) -> None:
    with connect(smtp_server()) as (sock, stream):
        read_reply(stream)
        assert command(sock, stream, "QUIT") == b"221 2.0.0 Bye\r\n"
        assert stream.read() == b""


def test_received_records_every_command_line_in_order_without_crlf(smtp_server: Factory) -> None:
    server = smtp_server()
    with client(server) as smtp:
        smtp.sendmail("a@client.test", ["b@smtpd.test"], b"Subject: x\r\n\r\nbody\r\n")
    assert server.received == [
        "ehlo [127.0.0.1]",
        "mail FROM:<a@client.test> size=20",
        "rcpt TO:<b@smtpd.test>",
        "data",
        ".",
        "QUIT",  # from smtplib's __exit__
    ]
    assert server.connections == 1


def test_received_keeps_undecodable_bytes_and_a_last_line_without_crlf(
    smtp_server: Factory,
) -> None:
    server = smtp_server()
    with connect(server) as (sock, stream):
        read_reply(stream)
        sock.sendall(b"NOOP caf\xc3\xa9\r\nHELO \xff\r\nQUI")
        read_reply(stream)
        read_reply(stream)
        sock.shutdown(socket.SHUT_WR)
        assert stream.read() == b""  # the server has seen the end
    assert server.received == ["NOOP café", "HELO \ufffd", "QUI"]


# --- DATA -----------------------------------------------------------------


def test_data_is_stored_with_envelope_and_dot_stuffing_undone(smtp_server: Factory) -> None:
    server = smtp_server()
    with connect(server) as (sock, stream):
        read_reply(stream)
        command(sock, stream, "MAIL FROM:<a@client.test> SIZE=100")
        command(sock, stream, "RCPT TO:<b@smtpd.test>")
        command(sock, stream, "RCPT TO: <c@smtpd.test>")
        assert command(sock, stream, "DATA").startswith(b"354 ")
        sock.sendall(b"Subject: dots\r\n\r\n..leading dot\r\n.\r\n")
        assert read_reply(stream) == b"250 2.0.0 Ok: queued as 4TEST0001\r\n"
    assert server.messages == [
        smtpd.Message(
            mail_from="a@client.test",
            rcpt_tos=["b@smtpd.test", "c@smtpd.test"],
            data=b"Subject: dots\r\n\r\n.leading dot\r\n",
        )
    ]


def test_rejected_recipients_are_left_out_of_the_stored_envelope(smtp_server: Factory) -> None:
    server = smtp_server(rcpt_replies={"nobody@smtpd.test": "550 5.1.1 no such user"})
    with client(server) as smtp:
        smtp.sendmail("a@client.test", ["nobody@smtpd.test", "b@smtpd.test"], b"x\r\n")
    assert server.messages[0].rcpt_tos == ["b@smtpd.test"]


def test_data_refused_with_non_3xx_does_not_enter_data_mode(smtp_server: Factory) -> None:
    server = smtp_server(replies={"DATA": "554 5.5.1 no valid recipients"})
    with connect(server) as (sock, stream):
        read_reply(stream)
        assert command(sock, stream, "DATA") == b"554 5.5.1 no valid recipients\r\n"
        assert command(sock, stream, "NOOP") == b"250 2.0.0 Ok\r\n"
    assert server.messages == []


def test_message_refused_at_dot_is_not_stored(smtp_server: Factory) -> None:
    server = smtp_server(replies={"DOT": "552 5.3.4 message too big"})
    with client(server) as smtp, pytest.raises(smtplib.SMTPDataError):
        smtp.sendmail("a@client.test", ["b@smtpd.test"], b"x\r\n")
    assert server.messages == []


# --- LMTP -----------------------------------------------------------------


def test_lmtp_server_refuses_ehlo_and_helo_and_answers_lhlo(smtp_server: Factory) -> None:
    with connect(smtp_server(lmtp=True)) as (sock, stream):
        read_reply(stream)
        assert (
            command(sock, stream, "EHLO client.test")
            == b"500 5.5.1 This is an LMTP server: use LHLO\r\n"
        )
        assert command(sock, stream, "HELO client.test").startswith(b"500 ")
        assert command(sock, stream, "LHLO client.test").startswith(b"250-smtpd.test\r\n")


def test_lmtp_answers_the_dot_once_per_accepted_recipient_in_order(smtp_server: Factory) -> None:
    server = smtp_server(
        lmtp=True,
        rcpt_replies={"gone@smtpd.test": "550 5.1.1 no such user"},
        dot_replies={"full@smtpd.test": "452 4.2.2 mailbox full"},
    )
    with connect(server) as (sock, stream):
        read_reply(stream)
        command(sock, stream, "LHLO client.test")
        command(sock, stream, "MAIL FROM:<a@client.test>")
        for rcpt in ("b@smtpd.test", "gone@smtpd.test", "full@smtpd.test"):
            command(sock, stream, f"RCPT TO:<{rcpt}>")
        assert command(sock, stream, "DATA").startswith(b"354 ")
        sock.sendall(b"Subject: x\r\n\r\nbody\r\n.\r\n")
        assert read_reply(stream) == b"250 2.0.0 Ok: queued as 4TEST0001\r\n"
        assert read_reply(stream) == b"452 4.2.2 mailbox full\r\n"
        assert command(sock, stream, "NOOP") == b"250 2.0.0 Ok\r\n"
    assert server.messages == [
        smtpd.Message("a@client.test", ["b@smtpd.test"], b"Subject: x\r\n\r\nbody\r\n")
    ]


# --- scripted replies -----------------------------------------------------


def test_str_reply_is_one_line_with_crlf_added(smtp_server: Factory) -> None:
    with client(smtp_server(replies={"MAIL": "451 4.3.0 temporary failure"})) as smtp:
        assert smtp.mail("a@client.test") == (451, b"4.3.0 temporary failure")


def test_list_reply_is_code_first_and_gets_continuation_markers() -> None:
    assert render(["250", "smtpd.test", "PIPELINING", "8BITMIME"]) == (
        b"250-smtpd.test\r\n250-PIPELINING\r\n250 8BITMIME\r\n"
    )
    assert render(["250", "only line"]) == b"250 only line\r\n"
    assert render(["250"]) == b"250\r\n"


def test_list_reply_goes_out_as_a_multiline_reply(smtp_server: Factory) -> None:
    server = smtp_server(replies={"NOOP": ["250", "first", "second"]})
    with connect(server) as (sock, stream):
        read_reply(stream)
        assert command(sock, stream, "NOOP") == b"250-first\r\n250 second\r\n"


@pytest.mark.parametrize(
    "raw",
    [
        smtpd.OVERLONG_LINE,
        smtpd.NUL_BYTE,
        smtpd.NON_UTF8,
        smtpd.INVALID_CODE,
        smtpd.BROKEN_CONTINUATION,
        smtpd.UNTERMINATED_CONTINUATION,
        smtpd.BARE_LF,
        smtpd.NO_LINE_END,
    ],
)
def test_bytes_reply_is_sent_exactly_as_given(smtp_server: Factory, raw: bytes) -> None:
    server = smtp_server(replies={"NOOP": raw}, close_after="NOOP")
    with connect(server) as (sock, stream):
        read_reply(stream)
        sock.sendall(b"NOOP\r\n")
        assert stream.read() == raw


def test_garbage_banner_is_sent_instead_of_a_greeting(smtp_server: Factory) -> None:
    with connect(smtp_server(banner=smtpd.GARBAGE_BANNER)) as (_, stream):
        assert stream.readline() == b"SSH-2.0-OpenSSH_9.2p1 Debian-2\r\n"


def test_overlong_line_is_more_than_smtplib_accepts(smtp_server: Factory) -> None:
    server = smtp_server(replies={"NOOP": smtpd.OVERLONG_LINE})
    with client(server) as smtp, pytest.raises(smtplib.SMTPResponseException, match="too long"):
        smtp.noop()


def test_reply_keys_are_case_insensitive(smtp_server: Factory) -> None:
    with client(smtp_server(replies={"noop": "250 lower"})) as smtp:
        assert smtp.noop() == (250, b"lower")


def test_rcpt_replies_override_the_rcpt_reply_for_one_address(smtp_server: Factory) -> None:
    server = smtp_server(
        replies={"RCPT": "250 2.1.5 default"},
        rcpt_replies={"tempfail@smtpd.test": "451 4.3.0 later"},
    )
    with client(server) as smtp:
        smtp.mail("a@client.test")
        assert smtp.rcpt("TempFail@smtpd.test") == (451, b"4.3.0 later")
        assert smtp.rcpt("other@smtpd.test") == (250, b"2.1.5 default")


def test_script_changes_apply_to_the_next_command(smtp_server: Factory) -> None:
    server = smtp_server(replies={"MAIL": "421 4.3.2 shutting down"})
    with client(server) as smtp:
        assert smtp.mail("a@client.test")[0] == 421
        server.script.replies.pop("MAIL")
        assert smtp.mail("a@client.test")[0] == 250


# --- timing faults --------------------------------------------------------


def test_delay_before_banner(smtp_server: Factory) -> None:
    server = smtp_server(delays={"BANNER": 0.3})
    started = time.monotonic()
    with connect(server) as (_, stream):
        assert stream.readline().startswith(b"220 ")
    assert time.monotonic() - started >= 0.3


def test_delay_before_one_verb_only(smtp_server: Factory) -> None:
    with client(smtp_server(delays={"RCPT": 0.5})) as smtp:
        started = time.monotonic()
        smtp.mail("a@client.test")
        assert time.monotonic() - started < 0.5
        smtp.rcpt("b@smtpd.test")
        assert time.monotonic() - started >= 0.5


def test_silent_server_accepts_records_and_never_sends_a_byte(smtp_server: Factory) -> None:
    server = smtp_server(silent=True)
    with connect(server) as (sock, _):
        sock.sendall(b"EHLO client.test\r\n")
        sock.settimeout(0.3)
        with pytest.raises(socket.timeout):
            sock.recv(1)
    assert server.connections == 1
    assert server.received == ["EHLO client.test"]


def test_dribble_sends_every_reply_one_byte_at_a_time(smtp_server: Factory) -> None:
    server = smtp_server(banner="220 x", dribble=0.05)
    started = time.monotonic()
    with connect(server) as (sock, _):
        chunks = []
        while not b"".join(chunks).endswith(b"\r\n"):
            chunks.append(sock.recv(100))
    assert b"".join(chunks) == b"220 x\r\n"
    assert len(chunks) >= 5  # nearly always 7; the client may be late to read
    assert time.monotonic() - started >= 7 * 0.05


# --- hanging up -----------------------------------------------------------


def test_close_at_banner_hangs_up_before_the_greeting(smtp_server: Factory) -> None:
    with connect(smtp_server(close_at="BANNER")) as (_, stream):
        assert stream.read() == b""


def test_close_after_banner_greets_then_hangs_up(smtp_server: Factory) -> None:
    with connect(smtp_server(close_after="BANNER")) as (_, stream):
        assert stream.read() == b"220 smtpd.test ESMTP test server\r\n"


def test_close_at_rcpt_drops_connection_without_reply(smtp_server: Factory) -> None:
    server = smtp_server(close_at="RCPT")
    with client(server) as smtp:
        smtp.mail("a@client.test")
        with pytest.raises(smtplib.SMTPServerDisconnected):
            smtp.rcpt("b@smtpd.test")
    assert server.received[-1] == "rcpt TO:<b@smtpd.test>"


def test_close_at_dot_drops_connection_after_the_data_without_reply(smtp_server: Factory) -> None:
    server = smtp_server(close_at="DOT")
    with client(server) as smtp, pytest.raises(smtplib.SMTPServerDisconnected):
        smtp.sendmail("a@client.test", ["b@smtpd.test"], b"x\r\n")
    assert server.received[-1] == "."
    assert server.messages == []


def test_close_after_mail_replies_then_hangs_up(smtp_server: Factory) -> None:
    with connect(smtp_server(close_after="MAIL")) as (sock, stream):
        read_reply(stream)
        sock.sendall(b"MAIL FROM:<a@client.test>\r\n")
        assert stream.read() == b"250 2.1.0 Ok\r\n"


# --- PROXY protocol -------------------------------------------------------


def test_proxy_v1_header_is_parsed_before_the_banner(smtp_server: Factory) -> None:
    server = smtp_server(expect_proxy=True)
    header = b"PROXY TCP4 192.0.2.10 127.0.0.1 40000 25\r\n"
    with connect(server) as (sock, stream):
        sock.sendall(header)
        assert stream.readline().startswith(b"220 ")
    assert server.proxy_headers == [
        {
            "version": 1,
            "protocol": "TCP4",
            "source_address": "192.0.2.10",
            "source_port": 40000,
            "dest_address": "127.0.0.1",
            "dest_port": 25,
            "raw": header,
        }
    ]
    assert server.received == []


def test_proxy_v1_unknown_is_accepted(smtp_server: Factory) -> None:
    server = smtp_server(expect_proxy=True)
    with connect(server) as (sock, stream):
        sock.sendall(b"PROXY UNKNOWN\r\n")
        assert stream.readline().startswith(b"220 ")
    assert server.proxy_headers[0]["protocol"] == "UNKNOWN"


@pytest.mark.parametrize(("source", "dest"), [("192.0.2.10", "127.0.0.1"), ("2001:db8::10", "::1")])
def test_proxy_v2_header_is_parsed_before_the_banner(
    smtp_server: Factory, source: str, dest: str
) -> None:
    server = smtp_server(expect_proxy=True)
    header = proxy_v2(source, dest, 40000, 25)
    with connect(server) as (sock, stream):
        sock.sendall(header)
        assert stream.readline().startswith(b"220 ")
        assert command(sock, stream, "NOOP") == b"250 2.0.0 Ok\r\n"
    parsed = server.proxy_headers[0]
    assert parsed["version"] == 2
    assert parsed["command"] == "PROXY"
    assert (parsed["source_address"], parsed["source_port"]) == (source, 40000)
    assert (parsed["dest_address"], parsed["dest_port"]) == (dest, 25)
    assert parsed["raw"] == header


@pytest.mark.parametrize(
    "opening",
    [
        b"EHLO client.test\r\n",
        b"PROXY TCP4 192.0.2.10 ::1 40000 25\r\n",
        b"PROXY TCP4 192.0.2.10 127.0.0.1 40000 99999\r\n",
        smtpd.PROXY_V2_SIGNATURE + b"\x31\x11\x00\x00",
    ],
    ids=["plain-smtp", "mixed-families", "bad-port", "v2-bad-version"],
)
def test_connection_without_a_valid_proxy_header_is_closed_when_one_is_expected(
    smtp_server: Factory, opening: bytes
) -> None:
    server = smtp_server(expect_proxy=True)
    with connect(server) as (sock, stream):
        sock.sendall(opening)
        assert stream.read() == b""
    assert server.proxy_headers == []


def test_proxy_header_is_an_unknown_command_when_not_expected(smtp_server: Factory) -> None:
    server = smtp_server()
    with connect(server) as (sock, stream):
        read_reply(stream)
        reply = command(sock, stream, "PROXY TCP4 192.0.2.10 127.0.0.1 40000 25")
    assert reply.startswith(b"502 ")
    assert server.proxy_headers == []


# --- the server itself ----------------------------------------------------


def test_several_servers_on_other_loopback_addresses_run_at_once(smtp_server: Factory) -> None:
    first = smtp_server(banner="220 first")
    second = smtp_server(banner="220 second", host="127.0.0.2")
    assert second.host == "127.0.0.2"
    for server, banner in ((first, b"220 first\r\n"), (second, b"220 second\r\n")):
        with connect(server) as (_, stream):
            assert stream.readline() == banner


def test_serves_ipv6_loopback(smtp_server: Factory) -> None:
    try:
        server = smtp_server(host="::1")
    except OSError as error:
        pytest.skip(f"no IPv6 loopback here: {error}")
    with connect(server) as (_, stream):
        assert stream.readline().startswith(b"220 ")


def test_stop_drops_open_connections_promptly(smtp_server: Factory) -> None:
    server = smtp_server()
    with connect(server) as (sock, stream):
        read_reply(stream)
        server.script.dribble = 5.0
        sock.sendall(b"NOOP\r\n")  # the server now waits 5 s before each byte
        started = time.monotonic()
        server.stop()
        assert time.monotonic() - started < 2
        assert stream.read() == b""


def test_stop_leaves_no_connection_open_even_one_made_just_before() -> None:
    for _ in range(10):  # the race needs a few rounds to show
        with SMTPTestServer() as server:
            sock = socket.create_connection((server.host, server.port), timeout=2)
        with sock:
            try:
                assert sock.recv(100) in (b"", b"220 smtpd.test ESMTP test server\r\n")
                assert sock.recv(100) == b""
            except ConnectionResetError:
                pass  # refused before it was accepted: closed just the same


def test_context_manager_starts_and_stops() -> None:
    with SMTPTestServer(Script(banner="220 managed")) as server:
        assert server.port != 0
        with connect(server) as (_, stream):
            assert stream.readline() == b"220 managed\r\n"
    with pytest.raises(OSError):
        socket.create_connection((server.host, server.port), timeout=2)


# --- command line ---------------------------------------------------------


@contextmanager
def cli(*args: str) -> Iterator[tuple[subprocess.Popen[str], str, int]]:
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.smtpd", "--port", "0", *args],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        assert line.startswith("listening on "), process.stderr.read() if process.stderr else ""
        host, _, port = line.removeprefix("listening on ").strip().rpartition(":")
        yield process, host, int(port)
    finally:
        if process.poll() is None:
            process.kill()
        process.communicate()


def test_cli_prints_the_real_port_and_serves_the_scripted_replies(tmp_path: Path) -> None:
    log = tmp_path / "commands.log"
    options = [
        "--reply=RCPT=451 4.3.0 later",
        "--rcpt-reply=ok@smtpd.test=250 2.1.5 fine",
        "--reply=EHLO=250-cli.test",
        "--reply=EHLO=250 PIPELINING",
        r"--raw-reply=NOOP=250 \x00nul\r\n",
        f"--log={log}",
    ]
    with cli(*options) as (process, host, port):
        assert host == "127.0.0.1"
        with smtplib.SMTP(host, port, timeout=5) as smtp:
            assert smtp.ehlo() == (250, b"cli.test\nPIPELINING")
            smtp.mail("a@client.test")
            assert smtp.rcpt("b@smtpd.test") == (451, b"4.3.0 later")
            assert smtp.rcpt("ok@smtpd.test") == (250, b"2.1.5 fine")
            assert smtp.noop() == (250, b"\x00nul")
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=5) == 0
    lines = log.read_text().splitlines()
    assert lines[0].startswith("ehlo ")
    assert lines[1:3] == ["mail FROM:<a@client.test>", "rcpt TO:<b@smtpd.test>"]
    assert lines[-1] == "QUIT"


def test_cli_faults_and_clean_exit_on_sigint() -> None:
    with cli("--close-at", "MAIL", "--delay", "BANNER=0.2", "--banner", "220 slow") as (
        process,
        host,
        port,
    ):
        started = time.monotonic()
        with smtplib.SMTP(host, port, timeout=5) as smtp:
            assert time.monotonic() - started >= 0.2
            with pytest.raises(smtplib.SMTPServerDisconnected):
                smtp.mail("a@client.test")
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=5) == 0
        assert process.stderr is not None
        assert "Traceback" not in process.stderr.read()


def test_cli_rejects_a_malformed_option() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "tests.smtpd", "--port", "0", "--reply", "no-equals-sign"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 2
    assert "--reply expects KEY=VALUE" in done.stderr


def test_replies_written_back_to_back_are_not_held_for_an_ack(smtp_server: Factory) -> None:
    """Nagle's algorithm would hold LMTP's second reply until the client's delayed ACK."""
    server = smtp_server()
    with connect(server) as (_, stream):
        read_reply(stream)  # the session exists now
        [conn] = server._sessions.values()
        assert conn.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
