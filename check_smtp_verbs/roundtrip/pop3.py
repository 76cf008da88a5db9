"""POP3: poll for the probe, delete it with DELE.

A POP3 session shows the mailbox as it was at login (RFC 1939), and the protocol has
nothing like IDLE, so waiting means a new session per look, with the back-off of
:mod:`.waiting` between them.  Each message is identified by its UIDL and its header
read once (``TOP n 0``: the header and no body line); only a header that is one of the
check's probes leads to a DELE, and deletions take effect at QUIT, so a session that
breaks off deletes nothing.
"""

from __future__ import annotations

import contextlib
import poplib
import ssl
from collections.abc import Collection
from email.utils import parsedate_to_datetime

from check_smtp_verbs.core.deadline import Deadline, DeadlineExceeded, clock
from check_smtp_verbs.core.transcript import REDACTED, Transcript
from check_smtp_verbs.roundtrip.connection import (
    DeadlineTransport,
    Found,
    MailboxFailed,
    Report,
    timed_out,
)
from check_smtp_verbs.roundtrip.url import MailboxURL
from check_smtp_verbs.roundtrip.waiting import header_fields, intervals, pause, probe_id


class _Client(DeadlineTransport, poplib.POP3):
    """poplib on the deadline's socket, with a transcript that never holds the password."""

    def _putline(self, line: bytes) -> None:
        text = line.decode("utf-8", "replace")
        if text.upper().startswith("PASS "):
            text = f"{text[:4]} {REDACTED}"
        self._transcript.client(text)
        super()._putline(line)

    def _getresp(self) -> bytes:
        """The status line, recorded; multi-line bodies (headers) are not."""
        response, _ = self._getline()
        self._transcript.server(response.decode("utf-8", "replace"))
        if not response.startswith(b"+"):
            raise poplib.error_proto(response)
        return response

    def start_tls(self) -> None:
        """STLS (RFC 2595) with our own bounded handshake; capabilities are asked again."""
        self._shortcmd("STLS")
        self._upgrade()

    def log_in(self, user: str, password: str) -> None:
        self._transcript.add_secret(password)
        try:
            self.user(user)
            self.pass_(password)
        except poplib.error_proto as exc:
            raise MailboxFailed(
                "login",
                f"mailbox login failed for {user}: {self._transcript.scrub(_text(exc))}",
            ) from None

    def probes(
        self, wanted: Collection[str], checked: set[str]
    ) -> dict[str, tuple[int, float | None]]:
        """Probes among the messages not ``checked`` yet: Message-ID -> (number, arrival).

        ``checked`` collects the UIDLs looked at, so that later sessions read only the
        headers of messages that are new.
        """
        _, lines, _ = self.uidl()
        found: dict[str, tuple[int, float | None]] = {}
        for line in lines:
            number, _, uidl = line.decode("utf-8", "replace").partition(" ")
            if not uidl or uidl in checked:
                continue
            _, header_lines, _ = self.top(int(number), 0)
            checked.add(uidl)
            header = b"\r\n".join(header_lines) + b"\r\n"
            message_id = probe_id(header, wanted)
            if message_id is not None:
                found[message_id] = (int(number), _arrival(header))
        return found


def _arrival(header: bytes) -> float | None:
    """When the last hop delivered the message: the date of the topmost Received field.

    POP3 has no INTERNALDATE; the delivering agent (Dovecot's LMTP, Postfix's local or
    virtual) prepends a Received field ending in ``; <date>``.
    """
    received = header_fields(header).get("received")
    if not received:
        return None
    _, semicolon, date = received[0].rpartition(";")
    if not semicolon:
        return None
    try:
        return parsedate_to_datetime(date.strip()).timestamp()
    except (TypeError, ValueError, IndexError):
        return None


def _text(exc: poplib.error_proto) -> str:
    raw = exc.args[0] if exc.args else b""
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)
    return " ".join(text.split()) or "no reason given"


def visit(
    url: MailboxURL,
    user: str,
    password: str,
    wanted: Collection[str],
    deadline: Deadline,
    transcript: Transcript,
    context: ssl.SSLContext,
    *,
    server_name: str | None = None,
    starttls: str = "required",
    wait: bool = True,
) -> Report:
    """Look for the wanted probes in one session, and with ``wait`` in new sessions
    (with back-off) until all came or the deadline is near; delete what was found.

    Running out of time while waiting is not an error (the report lacks what did not
    come); a failure to connect, secure the connection or log in is MailboxFailed.
    """
    found: dict[str, Found] = {}
    checked: set[str] = set()
    backoff = intervals()
    notes: list[str] = []
    sessions = 0
    while True:
        stage = "connect"
        client: _Client | None = None
        try:
            client = _Client(url, context, server_name or url.host, deadline, transcript)
            sessions += 1
            stage = "tls"
            if not url.implicit_tls:
                try:
                    offered = "STLS" in client.capa()
                except poplib.error_proto:
                    offered = False  # no CAPA (RFC 2449) at all: no STLS either
                if offered:
                    client.start_tls()
                elif starttls == "required":
                    raise MailboxFailed(
                        "tls",
                        f"the POP3 server {url} does not offer STLS "
                        "(required for pop3://; use pop3s:// for implicit TLS)",
                    )
            stage = "login"
            client.log_in(user, password)
            stage = "search"
            seen = clock()
            probes = {
                message_id: where
                for message_id, where in client.probes(wanted, checked).items()
                if message_id not in found
            }
            stage = "delete"
            for number, _ in probes.values():
                client.dele(number)
            done = len(found) + len(probes) >= len(set(wanted)) or not wait
            if not done:
                stage = "wait"
                done = not pause(client.sock, next(backoff), deadline)
            stage = "logout"
            client.quit()  # the DELEs take effect here
            client = None
            for message_id, (_, arrived) in probes.items():
                found[message_id] = Found(message_id, seen, arrived, deleted=True)
            if done:
                method = "polling" if sessions > 1 else "first look" if wait else "no wait"
                return Report(found, method, tuple(notes))
        except DeadlineExceeded:
            if stage == "wait" or sessions > 1:  # out of time waiting: the rest is missing
                return Report(found, "polling", tuple(notes))
            raise timed_out(stage, "POP3", url) from None
        except poplib.error_proto as exc:
            if stage == "connect":
                raise MailboxFailed(
                    stage, f"no POP3 greeting from {url}: {transcript.scrub(_text(exc))}"
                ) from None
            if stage == "connect":
                raise MailboxFailed(
                    stage, f"no POP3 greeting from {url}: {transcript.scrub(_text(exc))}"
                ) from None
            raise MailboxFailed(
                stage, f"POP3 error ({stage}): {transcript.scrub(_text(exc))}"
            ) from None
        except OSError as exc:
            raise MailboxFailed(
                stage, f"the POP3 connection failed ({stage}): {exc.strerror or exc}"
            ) from None
        finally:
            if client is not None:
                with contextlib.suppress(OSError):
                    client.close()
