"""A scriptable SMTP server for tests that need a server to misbehave.

aiosmtpd always speaks correct SMTP, but a monitoring plugin earns its keep
on servers that don't: slow, silent, hanging up, sending garbage.  This server
works on raw bytes and does exactly what its :class:`Script` says, so every
such case is one line in a test.

Replies (type :data:`Reply`) come in three forms:

* ``str`` -- one complete reply line without CRLF, e.g.
  ``"451 4.3.0 temporary failure"``; the server appends CRLF.
* ``list[str]`` -- a multi-line reply written *code first*: element 0 is the
  reply code, every further element is the text of one line, and the server
  adds the ``-`` / space continuation markers.  ``["250", "smtpd.test",
  "PIPELINING"]`` goes out as ``250-smtpd.test\\r\\n250 PIPELINING\\r\\n``.
* ``bytes`` -- sent exactly as given, for replies no well-behaved server
  would send (see the fault constants such as :data:`OVERLONG_LINE`).

Command line (serves until SIGTERM/SIGINT)::

    python -m tests.smtpd --port 2525 --reply 'RCPT=451 4.3.0 try later'
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import binascii
import contextlib
import hmac
import ipaddress
import secrets
import signal
import socket
import ssl
import struct
import sys
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TextIO, Union

Reply = Union[str, list[str], bytes]

HOSTNAME = "smtpd.test"
DEFAULT_BANNER = f"220 {HOSTNAME} ESMTP test server"
DEFAULT_CAPABILITIES = ("PIPELINING", "SIZE 10240000", "8BITMIME", "ENHANCEDSTATUSCODES")
DEFAULT_REPLIES: dict[str, Reply] = {
    "HELO": f"250 {HOSTNAME}",
    "MAIL": "250 2.1.0 Ok",
    "RCPT": "250 2.1.5 Ok",
    "DATA": "354 End data with <CR><LF>.<CR><LF>",
    "DOT": "250 2.0.0 Ok: queued as 4TEST0001",
    "QUIT": "221 2.0.0 Bye",
    "RSET": "250 2.0.0 Ok",
    "NOOP": "250 2.0.0 Ok",
    "VRFY": "252 2.0.0 Cannot VRFY user, but will accept message",
    "EXPN": "502 5.5.1 EXPN not available",
    "STARTTLS": "454 4.7.0 TLS not available",
    "AUTH": "503 5.5.1 Authentication not enabled",
}
"""Replies of a well-behaved server; EHLO/LHLO are built from ``Script.capabilities``."""
UNKNOWN_VERB_REPLY = "502 5.5.2 Error: command not recognized"
LMTP_GREETING_REFUSAL = "500 5.5.1 This is an LMTP server: use LHLO"

# Common faults, as raw replies (or banners) so tests read as what they break.
OVERLONG_LINE = b"250 " + b"x" * 10_000 + b"\r\n"
"""RFC 5321 allows 512 octets per reply line; smtplib gives up at 8192."""
NUL_BYTE = b"250 2.0.0 Ok\x00hidden\r\n"
NON_UTF8 = b"250 2.0.0 caf\xe9 \xff\xfe\r\n"
INVALID_CODE = b"25O 2.0.0 letter O, not zero\r\n"
BROKEN_CONTINUATION = b"250-smtpd.test\r\n251-PIPELINING\r\n250 8BITMIME\r\n"
"""A multi-line reply whose code changes half-way."""
UNTERMINATED_CONTINUATION = b"250-smtpd.test\r\n250-PIPELINING\r\n"
"""A multi-line reply that announces more lines and then sends none."""
GARBAGE_BANNER = b"SSH-2.0-OpenSSH_9.2p1 Debian-2\r\n"
"""What a plugin pointed at the wrong port meets."""
BARE_LF = b"250 2.0.0 Ok\n"
NO_LINE_END = b"250 2.0.0 Ok"

PROXY_V2_SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"
MAX_LINE = 1 << 20
"""Far above any sane client line, so only a runaway client hits it."""


def render(reply: Reply) -> bytes:
    """Turn a :data:`Reply` into the bytes that go on the wire."""
    if isinstance(reply, bytes):
        return reply
    if isinstance(reply, str):
        return reply.encode() + b"\r\n"
    code, *texts = reply
    if not texts:
        return f"{code}\r\n".encode()
    lines = [f"{code}-{text}" for text in texts[:-1]] + [f"{code} {texts[-1]}"]
    return "".join(line + "\r\n" for line in lines).encode()


@dataclass
class Script:
    """How the server behaves; tests may change it while the server runs.

    Per-verb keys are SMTP verbs in any case, plus ``BANNER`` (the greeting)
    and ``DOT`` (the reply after the final "." of DATA).  ``silent``,
    ``expect_proxy`` and a ``BANNER`` fault take effect for connections
    accepted afterwards, everything else from the next command on.
    """

    banner: Reply = DEFAULT_BANNER
    replies: dict[str, Reply] = field(default_factory=dict)
    rcpt_replies: dict[str, Reply] = field(default_factory=dict)
    """Keyed by recipient address (without <>); wins over ``replies["RCPT"]``."""
    delays: dict[str, float] = field(default_factory=dict)
    capabilities: list[str] = field(default_factory=lambda: list(DEFAULT_CAPABILITIES))
    silent: bool = False
    """Accept and record commands, never send a byte."""
    dribble: float | None = None
    """Seconds to wait before each single byte of every reply."""
    dribble_after_tls: float | None = None
    """Like ``dribble``, but only once TLS is up (a gateway that stalls after STARTTLS)."""
    close_at: str | None = None
    """Hang up without replying when this verb arrives."""
    close_after: str | None = None
    """Reply to this verb, then hang up."""
    expect_proxy: bool = False
    """Require a PROXY protocol header before the banner."""
    tls_context: ssl.SSLContext | None = None
    """Server-side TLS: with it, EHLO offers STARTTLS and STARTTLS answers 220 and
    upgrades (unless ``replies["STARTTLS"]`` says otherwise)."""
    implicit_tls: bool = False
    """TLS from connect (SMTPS): the handshake comes before the banner."""
    offer_starttls: bool = True
    """Advertise STARTTLS in EHLO when ``tls_context`` is set."""
    tls_fault: str | None = None
    """Where the TLS handshake should be: ``"hang"`` (read, never answer) or ``"reset"``."""
    auth_mechanisms: list[str] = field(default_factory=list)
    """Offered in EHLO as ``AUTH ...`` and really checked against ``users``."""
    users: dict[str, str] = field(default_factory=dict)
    """User name -> password (or XOAUTH2 bearer token)."""
    echo_credentials: bool = False
    """Fault: put what the client sent (base64 and decoded) into the AUTH reply text."""
    proxy_version: int | None = None
    """With ``expect_proxy``: hang up on a header of any other version (1 or 2)."""
    lmtp: bool = False
    """Speak LMTP (RFC 2033): EHLO/HELO are refused, and after the final dot there is
    one reply per accepted recipient (``dot_replies``, else ``replies["DOT"]``)."""
    dot_replies: dict[str, Reply] = field(default_factory=dict)
    """LMTP: the reply after the dot for one recipient address (without <>)."""

    def reply_for(self, verb: str) -> Reply:
        """What to answer to ``verb``: the script's choice, else a sane default."""
        verb = verb.upper()
        replies = {key.upper(): value for key, value in self.replies.items()}
        if verb in replies:
            return replies[verb]
        if self.lmtp and verb in ("EHLO", "HELO"):
            return LMTP_GREETING_REFUSAL
        if verb in ("EHLO", "LHLO"):
            return ["250", HOSTNAME, *self.capabilities]
        return DEFAULT_REPLIES.get(verb, UNKNOWN_VERB_REPLY)

    def rcpt_reply_for(self, address: str) -> Reply:
        """What to answer to RCPT for ``address``, so one recipient can fail alone."""
        replies = {key.lower().strip("<>"): value for key, value in self.rcpt_replies.items()}
        return replies.get(address.lower(), self.reply_for("RCPT"))

    def dot_reply_for(self, address: str) -> Reply:
        """LMTP: the reply after the dot for one recipient."""
        replies = {key.lower().strip("<>"): value for key, value in self.dot_replies.items()}
        return replies.get(address.lower(), self.reply_for("DOT"))

    def delay_for(self, verb: str) -> float:
        return {key.upper(): value for key, value in self.delays.items()}.get(verb, 0.0)

    def closes_at(self, verb: str) -> bool:
        return self.close_at is not None and self.close_at.upper() == verb

    def closes_after(self, verb: str) -> bool:
        return self.close_after is not None and self.close_after.upper() == verb


@dataclass
class Message:
    """A message the server accepted, for asserting what a client delivered."""

    mail_from: str
    rcpt_tos: list[str]
    data: bytes


def parse_proxy_v1(raw: bytes) -> dict[str, Any] | None:
    """Parse a PROXY v1 text header (including CRLF); None if it is invalid."""
    if len(raw) > 107 or not raw.endswith(b"\r\n"):
        return None
    try:
        parts = raw[:-2].decode("ascii").split(" ")
    except UnicodeDecodeError:
        return None
    if parts[:2] == ["PROXY", "UNKNOWN"]:
        return {"version": 1, "protocol": "UNKNOWN", "raw": raw}
    if len(parts) != 6 or parts[0] != "PROXY" or parts[1] not in ("TCP4", "TCP6"):
        return None
    _, protocol, source, dest, source_port, dest_port = parts
    ip_version = 4 if protocol == "TCP4" else 6
    try:
        versions = {ipaddress.ip_address(source).version, ipaddress.ip_address(dest).version}
    except ValueError:
        return None
    if versions != {ip_version}:
        return None
    ports = [source_port, dest_port]
    if not all(port.isdigit() and int(port) <= 65535 for port in ports):
        return None
    return {
        "version": 1,
        "protocol": protocol,
        "source_address": source,
        "source_port": int(source_port),
        "dest_address": dest,
        "dest_port": int(dest_port),
        "raw": raw,
    }


_PROXY_V2_INET = {0x11: ("TCP4", 4), 0x12: ("UDP4", 4), 0x21: ("TCP6", 16), 0x22: ("UDP6", 16)}
_PROXY_V2_OTHER = {0x00: "UNSPEC", 0x31: "UNIX_STREAM", 0x32: "UNIX_DGRAM"}


def parse_proxy_v2(raw: bytes) -> dict[str, Any] | None:
    """Parse a complete binary PROXY v2 header; None if it is invalid."""
    if len(raw) < 16 or not raw.startswith(PROXY_V2_SIGNATURE) or raw[12] >> 4 != 2:
        return None
    command = {0: "LOCAL", 1: "PROXY"}.get(raw[12] & 0x0F)
    family = raw[13]
    if command is None or len(raw) != 16 + struct.unpack("!H", raw[14:16])[0]:
        return None
    header: dict[str, Any] = {"version": 2, "command": command, "raw": raw}
    if family in _PROXY_V2_OTHER:
        return header | {"protocol": _PROXY_V2_OTHER[family]}
    if family not in _PROXY_V2_INET:
        return None
    protocol, size = _PROXY_V2_INET[family]
    body = raw[16:]
    if len(body) < 2 * size + 4:
        return None
    source_port, dest_port = struct.unpack("!HH", body[2 * size : 2 * size + 4])
    return header | {
        "protocol": protocol,
        "source_address": str(ipaddress.ip_address(body[:size])),
        "source_port": source_port,
        "dest_address": str(ipaddress.ip_address(body[size : 2 * size])),
        "dest_port": dest_port,
    }


def _address(argument: str, keyword: str) -> str:
    """The address of ``FROM:<a@b> SIZE=1`` / ``TO: <a@b>``, "" if malformed."""
    head, colon, rest = argument.partition(":")
    if not colon or head.strip().upper() != keyword:
        return ""
    rest = rest.strip()
    if rest.startswith("<"):
        return rest[1:].partition(">")[0]
    return rest.partition(" ")[0]


def _lenient_b64(text: str) -> str:
    try:
        return base64.b64decode(text + "=" * (-len(text) % 4)).decode("utf-8", "replace")
    except (binascii.Error, ValueError):
        return ""


def server_tls_context(cert_chain_pem: str, key_pem: str | None = None) -> ssl.SSLContext:
    """A server-side context from PEM files (certificate chain, key: may be one file)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_chain_pem, key_pem)
    return context


def _reply_class(reply: Reply) -> bytes:
    """First digit of a reply, which decides what the server does next."""
    return render(reply)[:1]


Handler = Callable[[str, str], Awaitable[bool]]


class _Session:
    """One client connection; handlers return False when it must end.

    Adding a verb with its own behaviour is one ``_do_*`` method plus one
    entry in ``handlers``; every other verb just gets its scripted reply.
    """

    def __init__(
        self,
        server: SMTPTestServer,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
    ) -> None:
        self.server = server
        self.reader = reader
        self.writer = writer
        self.mail_from = ""
        self.rcpt_tos: list[str] = []
        self.handlers: dict[str, Handler] = {
            "EHLO": self._do_reset,
            "HELO": self._do_reset,
            "LHLO": self._do_reset,
            "RSET": self._do_reset,
            "MAIL": self._do_mail,
            "RCPT": self._do_rcpt,
            "DATA": self._do_data,
            "QUIT": self._do_quit,
            "STARTTLS": self._do_starttls,
            "AUTH": self._do_auth,
        }
        self.tls = False

    @property
    def script(self) -> Script:
        return self.server.script

    async def run(self) -> None:
        if self.script.closes_at("BANNER"):
            return
        if self.script.expect_proxy and not await self._read_proxy_header():
            return
        if self.script.implicit_tls and not await self._start_tls():
            return
        if self.script.silent:
            while await self._read_command() is not None:
                pass
            return
        if not await self._send("BANNER", self.script.banner):
            return
        while (line := await self._read_command()) is not None:
            verb, _, argument = line.partition(" ")
            verb = verb.upper()
            if self.script.closes_at(verb):
                return
            if not await self.handlers.get(verb, self._do_reply)(verb, argument):
                return

    async def _read_command(self) -> str | None:
        """Next command line, recorded before anything else happens to it.

        A fragment that the client sent without a line end before hanging up
        is recorded too: tests assert on everything that went on the wire.
        """
        try:
            line = await self.reader.readuntil(b"\n")
        except asyncio.IncompleteReadError as eof:
            if eof.partial:
                self.server._record(eof.partial.decode("utf-8", "replace"))
            return None
        except (asyncio.LimitOverrunError, ValueError):
            return None
        command = line.removesuffix(b"\n").removesuffix(b"\r").decode("utf-8", "replace")
        self.server._record(command)
        return command

    async def _send(self, verb: str, reply: Reply) -> bool:
        delay = self.script.delay_for(verb)
        if delay:
            await asyncio.sleep(delay)
        data = render(reply)
        dribble = self.script.dribble
        if dribble is None and self.tls:
            dribble = self.script.dribble_after_tls
        if dribble is None:
            self.writer.write(data)
            await self.writer.drain()
        else:
            for index in range(len(data)):
                await asyncio.sleep(dribble)
                self.writer.write(data[index : index + 1])
                await self.writer.drain()
        return not self.script.closes_after(verb)

    async def _do_reply(self, verb: str, argument: str) -> bool:
        return await self._send(verb, self.script.reply_for(verb))

    async def _do_reset(self, verb: str, argument: str) -> bool:
        self.mail_from, self.rcpt_tos = "", []
        replies = {key.upper() for key in self.script.replies}
        greetings = ("LHLO",) if self.script.lmtp else ("EHLO", "LHLO")
        if verb in greetings and verb not in replies:
            return await self._send(verb, ["250", HOSTNAME, *self._capabilities()])
        return await self._do_reply(verb, argument)

    def _capabilities(self) -> list[str]:
        extra = []
        script = self.script
        if script.tls_context is not None and script.offer_starttls and not self.tls:
            extra.append("STARTTLS")
        if script.auth_mechanisms:
            extra.append("AUTH " + " ".join(script.auth_mechanisms))
        return [*script.capabilities, *extra]

    async def _do_starttls(self, verb: str, argument: str) -> bool:
        scripted = {key.upper(): value for key, value in self.script.replies.items()}
        if self.script.tls_context is None or self.tls or verb in scripted:
            return await self._do_reply(verb, argument)
        if not await self._send(verb, "220 2.0.0 Ready to start TLS"):
            return False
        self.mail_from, self.rcpt_tos = "", []
        return await self._start_tls()

    async def _start_tls(self) -> bool:
        """Handshake as the script says; False ends the session (also on a failed one)."""
        fault = self.script.tls_fault
        if fault == "reset":
            self.writer.transport.abort()
            return False
        if fault == "hang":  # swallow the ClientHello and whatever follows, answer nothing
            while await self.reader.read(4096):
                pass
            return False
        assert self.script.tls_context is not None
        try:
            await self.writer.start_tls(self.script.tls_context)
        except (ssl.SSLError, ConnectionError, OSError, asyncio.IncompleteReadError):
            return False  # the client refused our certificate: its business, not a server bug
        ssl_object = self.writer.get_extra_info("ssl_object")
        self.server.tls_versions.append(ssl_object.version() if ssl_object else None)
        self.tls = True
        return True

    async def _do_auth(self, verb: str, argument: str) -> bool:
        """PLAIN, LOGIN, CRAM-MD5 and XOAUTH2, checked against ``Script.users``."""
        scripted = {key.upper(): value for key, value in self.script.replies.items()}
        if verb in scripted or not self.script.auth_mechanisms:
            return await self._do_reply(verb, argument)
        mechanism, _, initial = argument.strip().partition(" ")
        mechanism = mechanism.upper()
        if mechanism not in [m.upper() for m in self.script.auth_mechanisms]:
            return await self._send(verb, "504 5.5.4 Unrecognized authentication type")
        seen: list[str] = []
        cancelled = False

        async def answer(challenge: bytes) -> bytes | None:
            """Send a 334 challenge and decode the answer; None: cancelled or garbage."""
            await self._send(verb, "334 " + base64.b64encode(challenge).decode())
            nonlocal cancelled
            line = await self._read_command()
            if line is None or line == "*":
                cancelled = line == "*"
                return None
            seen.append(line)
            try:
                return base64.b64decode(line, validate=True)
            except (binascii.Error, ValueError):
                return None

        def decode(text: str) -> bytes | None:
            seen.append(text)
            if text == "=":
                return b""
            try:
                return base64.b64decode(text, validate=True)
            except (binascii.Error, ValueError):
                return None

        users = self.script.users
        ok = False
        if mechanism == "PLAIN":
            data = decode(initial) if initial else await answer(b"")
            if data is not None and data.count(b"\0") == 2:
                _, user, password = data.decode("utf-8", "replace").split("\0")
                ok = users.get(user) == password and user in users
        elif mechanism == "LOGIN":
            user_bytes = decode(initial) if initial else await answer(b"Username:")
            password_bytes = await answer(b"Password:") if user_bytes is not None else None
            if user_bytes is not None and password_bytes is not None:
                user = user_bytes.decode("utf-8", "replace")
                ok = user in users and users[user] == password_bytes.decode("utf-8", "replace")
        elif mechanism == "CRAM-MD5":
            challenge = f"<{secrets.token_hex(8)}@{HOSTNAME}>".encode()
            data = await answer(challenge)
            if data is not None and b" " in data:
                user, _, digest = data.decode("utf-8", "replace").rpartition(" ")
                if user in users:
                    wanted = hmac.new(users[user].encode(), challenge, "md5").hexdigest()
                    ok = hmac.compare_digest(wanted, digest)
        elif mechanism == "XOAUTH2":
            data = decode(initial) if initial else await answer(b"")
            fields = dict(
                part.partition("=")[::2]
                for part in (data or b"").decode("utf-8", "replace").split("\x01")
                if part
            )
            user, token = fields.get("user", ""), fields.get("auth", "")
            ok = user in users and token == f"Bearer {users[user]}"
            if not ok:  # Google's way: the error as JSON in a 334, then 535 after an empty line
                error = b'{"status":"401","schemes":"bearer","scope":"https://mail.google.com/"}'
                await self._send(verb, "334 " + base64.b64encode(error).decode())
                line = await self._read_command()
                if line is None:
                    return False
        if ok:
            return await self._send(verb, "235 2.7.0 Authentication successful")
        if cancelled:  # RFC 4954 4: the client said "*"
            return await self._send(verb, "501 5.7.0 Authentication cancelled")
        text = "5.7.8 Error: authentication failed"
        if self.script.echo_credentials and seen:
            shown = " ".join(seen)
            decoded = " ".join(_lenient_b64(line).replace("\0", " ") for line in seen)
            text += f" for {shown} ({decoded})"
        return await self._send(verb, f"535 {text}")

    async def _do_mail(self, verb: str, argument: str) -> bool:
        reply = self.script.reply_for(verb)
        if _reply_class(reply) == b"2":
            self.mail_from, self.rcpt_tos = _address(argument, "FROM"), []
        return await self._send(verb, reply)

    async def _do_rcpt(self, verb: str, argument: str) -> bool:
        address = _address(argument, "TO")
        reply = self.script.rcpt_reply_for(address)
        if _reply_class(reply) == b"2":
            self.rcpt_tos.append(address)
        return await self._send(verb, reply)

    async def _do_data(self, verb: str, argument: str) -> bool:
        reply = self.script.reply_for(verb)
        if not await self._send(verb, reply):
            return False
        if _reply_class(reply) != b"3":  # refused: no data mode
            return True
        lines: list[bytes] = []
        while True:
            try:
                line = await self.reader.readuntil(b"\n")
            except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError):
                return False
            if line.rstrip(b"\r\n") == b".":
                break
            lines.append(line[1:] if line.startswith(b".") else line)
        self.server._record(".")
        if self.script.closes_at("DOT"):
            return False
        if self.script.lmtp:
            return await self._lmtp_replies(b"".join(lines))
        reply = self.script.reply_for("DOT")
        if _reply_class(reply) == b"2":
            self.server.messages.append(Message(self.mail_from, self.rcpt_tos, b"".join(lines)))
        self.mail_from, self.rcpt_tos = "", []
        return await self._send("DOT", reply)

    async def _lmtp_replies(self, data: bytes) -> bool:
        """RFC 2033 4.2: one reply per accepted recipient, in RCPT order."""
        delivered = []
        for address in self.rcpt_tos:
            reply = self.script.dot_reply_for(address)
            if _reply_class(reply) == b"2":
                delivered.append(address)
            if not await self._send("DOT", reply):
                return False
        if delivered:
            self.server.messages.append(Message(self.mail_from, delivered, data))
        self.mail_from, self.rcpt_tos = "", []
        return True

    async def _do_quit(self, verb: str, argument: str) -> bool:
        """Hang up after any QUIT reply, as every real server does."""
        await self._send(verb, self.script.reply_for(verb))
        return False

    async def _read_proxy_header(self) -> bool:
        try:
            head = await self.reader.readexactly(len(PROXY_V2_SIGNATURE))
            if head == PROXY_V2_SIGNATURE:
                fixed = await self.reader.readexactly(4)
                (length,) = struct.unpack("!H", fixed[2:])
                header = parse_proxy_v2(head + fixed + await self.reader.readexactly(length))
            elif head.startswith(b"PROXY "):
                header = parse_proxy_v1(head + await self.reader.readuntil(b"\r\n"))
            else:
                header = None
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError):
            return False
        if header is None:
            return False
        if self.script.proxy_version not in (None, header["version"]):
            return False
        self.server.proxy_headers.append(header)
        return True


class SMTPTestServer:
    """Serves a :class:`Script` on a real TCP port from its own thread.

    The asyncio loop runs in a daemon thread so that ordinary blocking test
    code (smtplib, subprocesses running the plugin) can talk to it.  The
    socket listens before ``start()`` returns, so nobody has to wait for it.
    ``host`` must be an IP address (any of 127/8 or ::1), not a name.

    It accepts connections itself rather than through ``asyncio.Server``:
    a connection that the latter accepts just as it is closed is never
    handed to anyone, and its socket outlives ``stop()``.
    """

    def __init__(
        self,
        script: Script | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        log: TextIO | None = None,
    ) -> None:
        self.script = script if script is not None else Script()
        self.host = host
        self.port = port
        self.received: list[str] = []
        """Every command line the client sent (``"."`` ends DATA), without CRLF."""
        self.messages: list[Message] = []
        self.proxy_headers: list[dict[str, Any]] = []
        self.tls_versions: list[str | None] = []
        """The TLS version of every completed server-side handshake."""
        self.connections = 0
        """Counted on accept, which may come just after the client's connect() returns."""
        self.errors: list[BaseException] = []
        """Bugs in the server itself, so a test cannot pass on a broken server."""
        self._log = log
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._listener: socket.socket | None = None
        self._sessions: dict[asyncio.Task[None], socket.socket] = {}

    def start(self) -> SMTPTestServer:
        if self._loop is not None:
            raise RuntimeError("server already started")
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        self._listener = socket.create_server((self.host, self.port), family=family, backlog=128)
        self._listener.setblocking(False)
        self.port = self._listener.getsockname()[1]
        self._loop = asyncio.new_event_loop()
        self._loop.add_reader(self._listener, self._accept)
        self._thread = threading.Thread(
            target=self._loop.run_forever, name=f"smtpd {self.host}:{self.port}", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Drop every client connection and stop; safe to call twice."""
        loop, thread = self._loop, self._thread
        if loop is None or thread is None or loop.is_closed():
            return
        asyncio.run_coroutine_threadsafe(self._shutdown(), loop).result(timeout=10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)
        loop.close()

    def __enter__(self) -> SMTPTestServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _record(self, command: str) -> None:
        self.received.append(command)
        if self._log is not None:
            self._log.write(command + "\n")
            self._log.flush()

    def _accept(self) -> None:
        assert self._listener is not None
        try:
            conn, _ = self._listener.accept()
        except (BlockingIOError, InterruptedError, ConnectionAbortedError):
            return  # the client gave up before we got to it
        self.connections += 1
        conn.setblocking(False)
        # asyncio sets TCP_NODELAY only on sockets whose proto field says TCP, which an
        # accepted socket's does not: without it, a second reply written right after a
        # first (LMTP's per-recipient replies, a dribble) waits ~40 ms for the client's
        # delayed ACK, and the client would measure our Nagle instead of its server.
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._sessions[asyncio.get_running_loop().create_task(self._handle(conn))] = conn

    async def _handle(self, conn: socket.socket) -> None:
        # Server-side streams (what start_server builds), not open_connection's: only a
        # protocol with a client_connected_cb makes StreamWriter.start_tls() take the
        # server side of a STARTTLS handshake.
        loop = asyncio.get_running_loop()
        connected: asyncio.Future[asyncio.StreamWriter] = loop.create_future()
        reader = asyncio.StreamReader(limit=MAX_LINE, loop=loop)
        protocol = asyncio.StreamReaderProtocol(
            reader, lambda _reader, writer: connected.set_result(writer), loop=loop
        )
        await loop.connect_accepted_socket(lambda: protocol, sock=conn)
        writer = await connected
        try:
            await _Session(self, reader, writer).run()
        except ConnectionError:
            pass  # the client hung up first: a normal event for this server
        except asyncio.CancelledError:
            # stop(), which waits for this task anyway.  Not re-raised so
            # that no version of asyncio logs it as an error.
            writer.transport.abort()  # don't wait to flush a dribble
        except Exception as error:
            self.errors.append(error)
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _shutdown(self) -> None:
        assert self._listener is not None
        asyncio.get_running_loop().remove_reader(self._listener)
        self._listener.close()
        tasks = list(self._sessions)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for conn in self._sessions.values():
            conn.close()  # no-op unless its task was cancelled before it ran


def _unescape(text: str) -> bytes:
    r"""Bytes from Python-style escapes (\r \n \x00), other text as UTF-8."""
    return text.encode().decode("unicode_escape").encode("latin-1")


def _script_from_args(args: argparse.Namespace, parser: argparse.ArgumentParser) -> Script:
    def pairs(items: list[str], option: str) -> list[tuple[str, str]]:
        result = []
        for item in items:
            key, equals, value = item.partition("=")
            if not equals or not key:
                parser.error(f"{option} expects KEY=VALUE, got {item!r}")
            result.append((key, value))
        return result

    lines: dict[str, list[str]] = {}
    for verb, line in pairs(args.reply, "--reply"):
        lines.setdefault(verb.upper(), []).append(line)
    replies: dict[str, Reply] = {
        verb: found[0] if len(found) == 1 else "".join(f"{line}\r\n" for line in found).encode()
        for verb, found in lines.items()
    }
    replies |= {verb.upper(): _unescape(raw) for verb, raw in pairs(args.raw_reply, "--raw-reply")}
    try:
        delays = {verb.upper(): float(seconds) for verb, seconds in pairs(args.delay, "--delay")}
    except ValueError as error:
        parser.error(f"--delay: {error}")
    return Script(
        banner=_unescape(args.raw_banner) if args.raw_banner is not None else args.banner,
        replies=replies,
        rcpt_replies=dict(pairs(args.rcpt_reply, "--rcpt-reply")),
        delays=delays,
        silent=args.silent,
        dribble=args.dribble,
        close_at=args.close_at,
        close_after=args.close_after,
        expect_proxy=args.expect_proxy,
        tls_context=server_tls_context(args.tls_cert) if args.tls_cert else None,
        implicit_tls=args.implicit_tls,
        tls_fault=args.tls_fault,
        auth_mechanisms=[m.upper() for m in args.auth_mechanism],
        users=dict(pairs(args.user, "--user")),
        lmtp=args.lmtp,
        dot_replies=dict(pairs(args.dot_reply, "--dot-reply")),
    )


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m tests.smtpd",
        description="Scriptable, fault-injecting SMTP test server. Serves until SIGTERM/SIGINT.",
        epilog="Repeating --reply for one verb makes a multi-line reply of those exact lines, "
        "e.g. --reply EHLO=250-smtpd.test --reply 'EHLO=250 PIPELINING'. "
        r"BYTES take Python escapes such as \r \n \x00.",
    )
    add = parser.add_argument
    add("--host", default="127.0.0.1", help="IP address to bind (default %(default)s)")
    add("--port", type=int, default=2525, help="0 picks a free port (default %(default)s)")
    add("--reply", action="append", default=[], metavar="VERB=REPLY")
    add("--raw-reply", action="append", default=[], metavar="VERB=BYTES")
    add("--rcpt-reply", action="append", default=[], metavar="ADDR=REPLY")
    add("--delay", action="append", default=[], metavar="VERB=SECONDS", help="VERB may be BANNER")
    banner = parser.add_mutually_exclusive_group()
    banner.add_argument("--banner", default=DEFAULT_BANNER, metavar="TEXT")
    banner.add_argument("--raw-banner", metavar="BYTES")
    add("--silent", action="store_true", help="never send anything")
    add("--close-at", metavar="VERB", help="hang up without replying when VERB arrives")
    add("--close-after", metavar="VERB", help="hang up after replying to VERB")
    add("--dribble", type=float, metavar="SECONDS", help="send replies one byte per SECONDS")
    add("--expect-proxy", action="store_true", help="require a PROXY protocol header")
    add("--lmtp", action="store_true", help="speak LMTP: LHLO only, one reply per recipient")
    add("--dot-reply", action="append", default=[], metavar="ADDR=REPLY", help="LMTP only")
    add("--log", metavar="FILE", help="append every received command line to FILE")
    add("--tls-cert", metavar="PEM", help="certificate chain and key: offer STARTTLS")
    add("--implicit-tls", action="store_true", help="TLS from connect (needs --tls-cert)")
    add("--tls-fault", choices=("hang", "reset"), help="break the TLS handshake")
    add("--auth-mechanism", action="append", default=[], metavar="MECH", help="offer AUTH MECH")
    add("--user", action="append", default=[], metavar="USER=PASSWORD", help="AUTH credentials")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    script = _script_from_args(args, parser)
    stopping = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stopping.set())
    with contextlib.ExitStack() as stack:
        log = stack.enter_context(open(args.log, "a", encoding="utf-8")) if args.log else None
        try:
            server = stack.enter_context(SMTPTestServer(script, args.host, args.port, log=log))
        except OSError as error:
            parser.exit(1, f"cannot listen on {args.host} port {args.port}: {error}\n")
        host = f"[{server.host}]" if ":" in server.host else server.host
        print(f"listening on {host}:{server.port}", flush=True)
        stopping.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
