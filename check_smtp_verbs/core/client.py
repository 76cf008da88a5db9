"""A lean SMTP client: one command out, one validated reply in, nothing hidden.

Why not smtplib: importing it costs every check ``email.*``, ``ssl``, ``hmac``,
``hashlib`` and ``urllib.parse`` (about as much again as nagiosplugin itself), and
both programs used almost none of it: they time every verb, validate every reply
strictly, run their own AUTH exchange and bound every read by one deadline, all of
which smtplib had to be bent into.  What is left is the framing, and that is short:

* a command is one line; nothing the user typed reaches it unvalidated, and a CR or
  LF inside a command is refused here too, as a last line of defence;
* a reply is read line by line as soon as its last line arrives (no sleeps, no
  fixed-size reads that wait for more), every raw line is recorded, and the whole
  reply is validated against RFC 5321 4.2 (one code, ``-`` on all lines but the
  last, at most 1000 lines of at most 8192 bytes);
* before each command, nothing may be waiting from the server: PIPELINING is never
  used, so bytes already there are a reply to something else (a desynchronised
  walk, or an injection after STARTTLS) and the conversation is out of sync.

The socket is any object with ``recv``/``sendall`` bounded by the caller's deadline
and a non-blocking ``recv_now`` (core.deadline.DeadlineSocket, core.tls's TLS socket);
this module never waits on its own.
"""

from __future__ import annotations

import contextlib
import re
import select
from typing import Any, Callable, NamedTuple

from check_smtp_verbs.core.deadline import clock

MAX_REPLY_LINES = 1000
MAX_LINE = 8192  # smtplib's limit, kept so long replies fail the same way they always did
_LINE = re.compile(rb"([2-5][0-5][0-9])([ -]?)(.*?)\r?\n", re.DOTALL)

Record = Callable[[str], None]


class InvalidReply(Exception):
    """The server sent something that is not an SMTP reply; the message says what."""


class ConnectionClosed(Exception):
    """The server closed the connection before a complete reply arrived.

    Not an OSError on purpose: callers tell "the server hung up" apart from "the
    network failed" (reset, unreachable), which is an OSError.
    """


class OutOfSync(Exception):
    """Data was waiting from the server before a command was sent; the message shows it."""


class Reply(NamedTuple):
    code: int
    lines: tuple[str, ...]  # the text of each line, code and separator removed

    @property
    def text(self) -> str:
        return " ".join(line for line in self.lines if line)


def parse_reply(raw_lines: list[bytes]) -> Reply:
    """Validate the raw lines of one reply (as read, CRLF included) and decode them.

    Server text may be any bytes; it is decoded leniently (undecodable bytes become
    backslash escapes) because the code, not the text, is what a check judges.
    """
    if not raw_lines:
        raise InvalidReply("empty reply")
    code = None
    texts: list[str] = []
    last = len(raw_lines) - 1
    for number, raw in enumerate(raw_lines):
        if not raw.endswith(b"\n"):
            raise InvalidReply(f"reply line not terminated: {_show(raw)}")
        match = _LINE.fullmatch(raw)
        if match is None:
            raise InvalidReply(f"not an SMTP reply line (no valid 3-digit code): {_show(raw)}")
        line_code, separator, text = match.groups()
        if separator == b"" and text:
            raise InvalidReply(f"no space after the reply code: {_show(raw)}")
        if code is None:
            code = int(line_code)
        elif int(line_code) != code:
            raise InvalidReply(
                f"continuation line has code {int(line_code)} after {code}: {_show(raw)}"
            )
        if (separator == b"-") != (number < last):
            raise InvalidReply(f"broken multi-line reply at: {_show(raw)}")
        texts.append(text.decode("utf-8", "backslashreplace"))
    assert code is not None
    return Reply(code, tuple(texts))


def _show(raw: bytes) -> str:
    return repr(raw[:80])[2:-1] + ("..." if len(raw) > 80 else "")


def dot_stuff(message: bytes) -> bytes:
    """The message as DATA sends it: CRLF line ends kept, leading dots doubled
    (RFC 5321 4.5.2), a final CRLF ensured and the terminating ``.`` line added."""
    data = re.sub(rb"^\.", b"..", message, flags=re.MULTILINE)
    if not data.endswith(b"\r\n"):
        data += b"\r\n"
    return data + b".\r\n"


def parse_extensions(reply: Reply) -> dict[str, str]:
    """EHLO keywords (lower case) and their parameters, from every line but the first.

    The old ``AUTH=LOGIN PLAIN`` form some servers still send is read like ``AUTH``.
    """
    extensions: dict[str, str] = {}
    for line in reply.lines[1:]:
        keyword, _, parameters = line.partition(" ")
        keyword, equals, rest = keyword.partition("=")  # the old "AUTH=LOGIN" form
        if equals:
            parameters = f"{rest} {parameters}"
        if (
            not keyword[:1].isalnum()
            or not keyword.replace("-", "").isascii()
            or not (keyword.replace("-", "").isalnum())
        ):
            continue
        keyword, parameters = keyword.lower(), parameters.strip()
        if keyword == "auth" and keyword in extensions:
            parameters = f"{extensions[keyword]} {parameters}".strip()
        extensions[keyword] = parameters
    return extensions


class Client:
    """One SMTP (or LMTP) session on an already connected, deadline-bounded socket.

    ``on_send``/``on_receive`` record each line as it crosses the wire (a transcript);
    ``sent_at``/``replied_at`` are the clock readings around the wire itself, so a
    step's time is exactly "first byte of the command sent until the last byte of
    the reply read", free of parsing and bookkeeping.
    """

    def __init__(
        self, sock: Any, on_send: Record | None = None, on_receive: Record | None = None
    ) -> None:
        self.sock = sock
        self._buffer = b""
        self._on_send = on_send or _ignore
        self._on_receive = on_receive or _ignore
        self.extensions: dict[str, str] = {}
        self.sent_at: float | None = None
        self.replied_at: float | None = None
        self.last_reply: Reply | None = None

    # -- the wire ---------------------------------------------------------------

    def attach(self, sock: Any) -> None:
        """Continue on another socket (the TLS one after STARTTLS); learnt capabilities
        are forgotten, as RFC 3207 4.2 requires."""
        self.sock = sock
        self.extensions = {}

    def waiting(self) -> bytes:
        """Bytes the server sent that no command asked for, without blocking."""
        data = self._buffer
        pending = getattr(self.sock, "pending", None)
        try:
            # Readable: data, a hang-up (for the next read to report) or, on TLS, only
            # a session ticket; and a TLS socket may hold decrypted bytes that select()
            # cannot see: pending() tells.  Nothing here may wait.
            if (pending is not None and pending()) or select.select([self.sock], [], [], 0)[0]:
                data += self.sock.recv_now(65536) or b""
        except (OSError, ValueError):
            return data
        return data

    def ensure_in_sync(self) -> None:
        """Refuse to send a command while an answer to something else is waiting."""
        early = self.waiting()
        if early:
            self._buffer = early
            shown = early[:80].decode("utf-8", "backslashreplace")
            raise OutOfSync(
                f"the server sent data before the command was sent: {shown!r}"
                + ("..." if len(early) > 80 else "")
            )

    def send(self, data: bytes, shown: str) -> None:
        """Write raw bytes; ``shown`` is what the transcript records instead of them."""
        self._on_send(shown)
        if self.sent_at is None:
            self.sent_at = clock()
        self.sock.sendall(data)

    def command(self, line: str, shown: str | None = None) -> Reply:
        """Send one command line and read its whole reply; ``shown`` replaces the line
        in the transcript (a secret)."""
        if "\r" in line or "\n" in line or "\0" in line:
            raise ValueError("an SMTP command must not contain CR, LF or NUL")
        self.ensure_in_sync()
        self.send(line.encode("utf-8") + b"\r\n", line if shown is None else shown)
        return self.read_reply()

    def read_reply(self) -> Reply:
        """Read one reply as soon as its last line is complete, and validate it."""
        self.last_reply = None
        lines: list[bytes] = []
        try:
            while True:
                if len(lines) >= MAX_REPLY_LINES:
                    raise InvalidReply(f"reply has more than {MAX_REPLY_LINES} lines")
                line = self._readline()
                if not line:
                    raise ConnectionClosed("connection closed by the server")
                lines.append(line)
                # Only a well-formed continuation line announces another line; anything
                # else ends the reply here, and parse_reply says what is wrong with it.
                if not (line[:3].isdigit() and line[3:4] == b"-" and line.endswith(b"\n")):
                    break
            self.replied_at = clock()
        finally:
            for raw in lines:
                self._on_receive(raw.rstrip(b"\r\n").decode("utf-8", "backslashreplace"))
        self.last_reply = parse_reply(lines)
        return self.last_reply

    def _readline(self) -> bytes:
        """One line, CRLF included; at end of stream what there is (maybe b"")."""
        while True:
            end = self._buffer.find(b"\n")
            if end >= 0:
                if end + 1 > MAX_LINE:
                    raise InvalidReply(f"reply line longer than {MAX_LINE} bytes")
                line, self._buffer = self._buffer[: end + 1], self._buffer[end + 1 :]
                return line
            if len(self._buffer) > MAX_LINE:
                raise InvalidReply(f"reply line longer than {MAX_LINE} bytes")
            chunk = self.sock.recv(65536)
            if not chunk:
                line, self._buffer = self._buffer, b""
                return line
            self._buffer += chunk

    # -- the verbs ----------------------------------------------------------------

    def greeting(self, name: str, verb: str = "EHLO") -> Reply:
        """EHLO (or LHLO) and, on 250, the extensions it lists."""
        reply = self.command(f"{verb} {name}")
        self.extensions = parse_extensions(reply) if reply.code == 250 else {}
        return reply

    def helo(self, name: str) -> Reply:
        self.extensions = {}
        return self.command(f"HELO {name}")

    def has_extension(self, keyword: str) -> bool:
        return keyword.lower() in self.extensions

    def mail(self, sender: str) -> Reply:
        return self.command(f"MAIL FROM:<{sender}>")

    def rcpt(self, recipient: str) -> Reply:
        return self.command(f"RCPT TO:<{recipient}>")

    def message(self, message: bytes, shown: str) -> Reply:
        """After DATA's 354: the message, dot-stuffed, its final dot, and the reply."""
        self.send(dot_stuff(message), shown)
        self._on_send(".")
        return self.read_reply()

    def close(self) -> None:
        sock, self.sock = self.sock, None
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.close()


def _ignore(text: str) -> None:
    pass
