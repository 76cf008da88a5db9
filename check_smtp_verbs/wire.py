"""SMTP framing with smtplib, made strict and observable.

smtplib frames commands and multi-line replies and reads each reply as soon as its
last line arrives, which is exactly what a verb-by-verb check needs.  It is lenient
where a check must not be: a reply whose continuation lines carry different codes,
or a code like ``25O``, comes back as something that looks usable.  This module
keeps smtplib for the framing and adds three things around it: every raw line is
recorded in the transcript, every reply is validated against RFC 5321 4.2, and no
reply may grow without bound.
"""

from __future__ import annotations

import re
import smtplib
from typing import Any, NamedTuple

from check_smtp_verbs.core.deadline import clock
from check_smtp_verbs.transcript import Transcript

MAX_REPLY_LINES = 1000
_LINE = re.compile(rb"([2-5][0-5][0-9])([ -]?)(.*?)\r?\n", re.DOTALL)


class InvalidReply(Exception):
    """The server sent something that is not an SMTP reply; the message says what."""


class Reply(NamedTuple):
    code: int
    lines: tuple[str, ...]  # the text of each line, code and separator removed

    @property
    def text(self) -> str:
        return " ".join(line for line in self.lines if line)


def parse_reply(raw_lines: list[bytes]) -> Reply:
    """Validate the raw lines of one reply (as read, CRLF included) and decode them.

    Server text may be any bytes; it is decoded leniently (undecodable bytes become
    backslash escapes) because the code, not the text, is what the check judges.
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


class _LineReader:
    """Wraps smtplib's socket file so every line it reads is kept for validation."""

    def __init__(self, file: Any) -> None:
        self._file = file
        self.lines: list[bytes] = []

    def readline(self, limit: int = -1) -> bytes:
        if len(self.lines) >= MAX_REPLY_LINES:
            raise InvalidReply(f"reply has more than {MAX_REPLY_LINES} lines")
        line: bytes = self._file.readline(limit)
        if line:
            self.lines.append(line)
        return line

    def close(self) -> None:
        self._file.close()


class Wire(smtplib.SMTP):
    """smtplib.SMTP on an already connected, deadline-bounded socket."""

    def __init__(self, host: str, helo: str, transcript: Transcript) -> None:
        # local_hostname avoids smtplib's getfqdn(), which can block on DNS for seconds
        super().__init__(local_hostname=helo)
        self._host = host  # smtplib.starttls() needs it for the certificate host name
        self.transcript = transcript
        self.last_reply: Reply | None = None
        self.shown_instead: str | None = None  # what the transcript shows for the next command
        # Clock readings around the wire itself, so a step's time is exactly "command sent
        # until reply complete", free of smtplib's parsing and our own bookkeeping.
        self.sent_at: float | None = None
        self.replied_at: float | None = None

    def attach(self, sock: Any) -> None:
        self.sock = sock
        self.file = None

    def send(self, s: Any) -> None:
        shown = self.shown_instead if self.shown_instead is not None else s
        self.shown_instead = None
        if isinstance(shown, bytes):
            shown = shown.decode("utf-8", "backslashreplace")
        self.transcript.client(shown.rstrip("\r\n"))
        if self.sent_at is None:
            self.sent_at = clock()
        super().send(s)

    def getreply(self) -> tuple[int, bytes]:
        """Read one reply; raise InvalidReply unless it is a well-formed SMTP reply."""
        self.last_reply = None
        if self.file is None:
            self.file = _LineReader(self.sock.makefile("rb"))
        reader = self.file
        reader.lines = []
        try:
            code, message = super().getreply()
            self.replied_at = clock()
        except smtplib.SMTPResponseException as exc:  # smtplib's "Line too long."
            raise InvalidReply(f"reply line longer than {smtplib._MAXLINE} bytes") from exc
        finally:
            for raw in reader.lines:
                self.transcript.server(raw.rstrip(b"\r\n").decode("utf-8", "backslashreplace"))
        self.last_reply = parse_reply(reader.lines)
        return code, message
