"""IMAP: log in, wait for the probe with IDLE (or poll without it), delete exactly the probes.

imaplib does the framing (tags, literals, quoting of responses); this module gives it
a socket bounded by the check's deadline, records every line in the transcript with
the credentials replaced, and adds what Python 3.11's imaplib lacks: IDLE (RFC 2177),
sent by hand and read line by line, each read bounded by the deadline.

Deleting is where a check can do harm, so it is narrow: the probes are found by
``UID SEARCH`` for the probe header, confirmed by their Message-ID, flagged
``\\Deleted`` by UID and expunged by UID (``UID EXPUNGE``, RFC 4315 UIDPLUS).  Without
UIDPLUS a plain EXPUNGE would also remove messages another client flagged and has not
expunged yet, so the check expunges only if its probes are the only flagged messages;
otherwise it leaves them flagged and says so.
"""

from __future__ import annotations

import base64
import contextlib
import imaplib
import re
import ssl
import time
from collections.abc import Collection

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
from check_smtp_verbs.roundtrip.waiting import (
    LAST_LOOK,
    PROBE_HEADER,
    intervals,
    pause,
    probe_id,
)

_BYTES_REPR = re.compile(r"""\bb['"](.*)['"]$""")  # imaplib quotes lines as repr(bytes)
_EXISTS = re.compile(rb"^\* \d+ EXISTS\b", re.IGNORECASE)
_UID = re.compile(rb"\bUID (\d+)", re.IGNORECASE)
_LOGIN = re.compile(r'^(\S+ LOGIN (?:"(?:[^"\\]|\\.)*"|\S+))', re.IGNORECASE)
_FETCH_ITEMS = f"(UID INTERNALDATE BODY.PEEK[HEADER.FIELDS (MESSAGE-ID {PROBE_HEADER.upper()})])"


class IdleRefused(MailboxFailed):
    """The server advertised IDLE and then refused it: the wait goes on by polling."""


def mailbox_name(folder: str) -> str:
    """A folder name as an IMAP quoted string, in modified UTF-7 (RFC 3501 5.1.3)."""
    out: list[str] = []
    pending: list[str] = []

    def flush() -> None:
        if pending:
            encoded = base64.b64encode("".join(pending).encode("utf-16-be")).decode("ascii")
            out.append("&" + encoded.rstrip("=").replace("/", ",") + "-")
            pending.clear()

    for char in folder:
        if 0x20 <= ord(char) <= 0x7E:
            flush()
            out.append("&-" if char == "&" else char)
        else:
            pending.append(char)
    flush()
    name = "".join(out)
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


class _Client(DeadlineTransport, imaplib.IMAP4):
    """imaplib on the deadline's socket, with a transcript that never holds a secret."""

    _hiding = False  # credentials are on the wire: record placeholders

    def send(self, data: bytes) -> None:
        text = data.decode("utf-8", "replace").rstrip("\r\n")
        if text:
            if self._hiding:
                login = _LOGIN.match(text)
                if login:
                    text = f"{login.group(1)} {REDACTED}"
                elif " AUTHENTICATE " not in text.upper():
                    text = REDACTED  # the SASL response
            self._transcript.client(text)
        super().send(data)

    def readline(self) -> bytes:
        line = super().readline()
        text = line.decode("utf-8", "replace").rstrip("\r\n")
        if text:
            self._transcript.server(text)
        return line

    def start_tls(self) -> None:
        """STARTTLS (RFC 3501 6.2.1) with the shared bounded handshake (_upgrade)."""
        typ, data = self._simple_command("STARTTLS")
        if typ != "OK":
            raise MailboxFailed("tls", f"STARTTLS refused: {_text(data)}")
        self._upgrade()
        self._get_capabilities()  # learnt again: those before TLS are not to be trusted

    def log_in(self, user: str, password: str) -> None:
        """AUTHENTICATE PLAIN where offered (UTF-8 safe), else LOGIN (ASCII only)."""
        self._transcript.add_secret(password)
        self._transcript.add_secret(password.replace("\\", "\\\\").replace('"', '\\"'))
        capabilities = set(self.capabilities)
        self._hiding = True
        try:
            if "AUTH=PLAIN" in capabilities:
                blob = f"\0{user}\0{password}".encode()
                typ, data = self.authenticate("PLAIN", lambda _challenge: blob)
            elif "LOGINDISABLED" in capabilities:
                raise MailboxFailed(
                    "login", "the IMAP server disables LOGIN and offers no AUTH=PLAIN"
                )
            elif not (user + password).isascii():
                raise MailboxFailed(
                    "login",
                    "the IMAP server offers only LOGIN, which cannot carry a non-ASCII "
                    "user name or password",
                )
            else:
                typ, data = self._simple_command("LOGIN", self._quote(user), self._quote(password))
                if typ != "OK":
                    raise self.error(_text(data))
                self.state = "AUTH"
        except self.error as exc:
            raise MailboxFailed(
                "login",
                f"mailbox login failed for {user}: {self._transcript.scrub(_text([exc]))}",
            ) from None
        finally:
            self._hiding = False
        self._get_capabilities()

    def idle(self, wait_until: Deadline) -> bool:
        """IDLE until the server announces a new message (True) or ``wait_until`` ends (False).

        Untagged lines other than EXISTS (EXPUNGE, FETCH of flags, RECENT) say nothing
        about new mail and are passed over.  Afterwards DONE ends the IDLE and its
        tagged reply is read within the check's own deadline.
        """
        tag = self._new_tag()
        self.tagged_commands.pop(tag, None)  # answered here, not by imaplib's reader
        self.send(tag + b" IDLE\r\n")
        arrived = False
        while True:
            line = self._get_line()
            if line.startswith(b"+"):
                break
            if line.startswith(tag + b" "):
                raise IdleRefused("protocol", f"IDLE refused: {_text([line])}")
            arrived = arrived or self._untagged(line)
        sock = self.sock
        sock.deadline = wait_until  # type: ignore[attr-defined]
        try:
            while not arrived:
                arrived = self._untagged(self._get_line())
        except DeadlineExceeded:
            if self._deadline.end <= wait_until.end:
                raise
        finally:
            sock.deadline = self._deadline  # type: ignore[attr-defined]
        self.send(b"DONE\r\n")
        while True:
            line = self._get_line()
            if line.startswith(tag + b" "):
                if not line[len(tag) + 1 :].upper().startswith(b"OK"):
                    raise MailboxFailed("protocol", f"IDLE ended badly: {_text([line])}")
                return arrived
            arrived = self._untagged(line) or arrived

    def _untagged(self, line: bytes) -> bool:
        if line.upper().startswith(b"* BYE"):
            raise MailboxFailed("protocol", f"the IMAP server said goodbye: {_text([line])}")
        return bool(_EXISTS.match(line))

    def probes(self, wanted: Collection[str]) -> dict[str, tuple[int, float | None]]:
        """The probes in the selected folder: Message-ID -> (UID, arrival in epoch seconds)."""
        typ, data = self.uid("SEARCH", "UNDELETED", "HEADER", PROBE_HEADER, '""')
        if typ != "OK":
            raise MailboxFailed("protocol", f"SEARCH failed: {_text(data)}")
        uids = b" ".join(item for item in data if isinstance(item, bytes)).split()
        if not uids:
            return {}
        typ, data = self.uid("FETCH", b",".join(uids).decode("ascii"), _FETCH_ITEMS)
        if typ != "OK":
            raise MailboxFailed("protocol", f"FETCH failed: {_text(data)}")
        found: dict[str, tuple[int, float | None]] = {}
        for item in data:
            if not isinstance(item, tuple) or len(item) < 2:
                continue
            meta, header = item[0], item[1]
            uid = _UID.search(meta)
            message_id = probe_id(header, wanted)
            if uid is None or message_id is None:
                continue
            when = imaplib.Internaldate2tuple(meta)
            found[message_id] = (int(uid.group(1)), time.mktime(when) if when else None)
        return found

    def remove(self, uids: Collection[int]) -> str:
        """Flag and expunge exactly ``uids``; returns a note if they could only be flagged."""
        uid_set = ",".join(str(uid) for uid in sorted(uids))
        typ, data = self.uid("STORE", uid_set, "+FLAGS.SILENT", r"(\Deleted)")
        if typ != "OK":
            raise MailboxFailed("delete", f"cannot flag the probe for deletion: {_text(data)}")
        if "UIDPLUS" in self.capabilities:
            typ, data = self.uid("EXPUNGE", uid_set)
            if typ != "OK":
                raise MailboxFailed("delete", f"UID EXPUNGE failed: {_text(data)}")
            return ""
        typ, data = self.uid("SEARCH", "DELETED")
        flagged = {int(uid) for item in data if isinstance(item, bytes) for uid in item.split()}
        if typ == "OK" and flagged <= set(uids):
            typ, data = self.expunge()
            if typ != "OK":
                raise MailboxFailed("delete", f"EXPUNGE failed: {_text(data)}")
            return ""
        return (
            "probe left flagged \\Deleted: the server has no UIDPLUS, and other messages "
            "are flagged \\Deleted too, which an EXPUNGE would remove with it"
        )


def _text(data: list[object]) -> str:
    """The last line of an imaplib response as text."""
    last = data[-1] if data else b""
    if isinstance(last, tuple):
        last = last[0]
    if isinstance(last, bytes):
        last = last.decode("utf-8", "replace")
    return " ".join(str(last).split()) or "no reason given"


def visit(
    url: MailboxURL,
    user: str,
    password: str,
    wanted: Collection[str],
    deadline: Deadline,
    transcript: Transcript,
    context: ssl.SSLContext,
    *,
    folder: str = "INBOX",
    server_name: str | None = None,
    starttls: str = "required",
    wait: bool = True,
) -> Report:
    """Log in, collect the wanted probes that are there, and with ``wait`` wait for
    the rest until the deadline (IDLE where offered, else polling); delete what was found.

    Running out of time while *waiting* is not an error: the report then lacks the
    probes that did not come.  Anything else that stops the visit is MailboxFailed.
    """
    stage = "connect"
    found: dict[str, Found] = {}
    notes: list[str] = []
    client: _Client | None = None
    method = "first look" if wait else "no wait"
    try:
        client = _Client(url, context, server_name or url.host, deadline, transcript)
        stage = "tls"
        if not url.implicit_tls:
            if "STARTTLS" in client.capabilities:
                client.start_tls()
            elif starttls == "required":
                raise MailboxFailed(
                    "tls",
                    f"the IMAP server {url} does not offer STARTTLS "
                    "(required for imap://; use imaps:// for implicit TLS)",
                )
        stage = "login"
        client.log_in(user, password)
        stage = "folder"
        typ, data = client.select(mailbox_name(folder))
        if typ != "OK":
            raise MailboxFailed("folder", f"cannot select the folder {folder}: {_text(data)}")
        stage = "search"

        def look() -> None:
            # An EXISTS that comes with the replies below was sent while looking: the
            # message it announces may have missed this look, and IDLE will not repeat it.
            client.untagged_responses.pop("EXISTS", None)
            seen = clock()
            probes = {
                message_id: where
                for message_id, where in client.probes(wanted).items()
                if message_id not in found
            }
            if not probes:
                return
            note = client.remove([uid for uid, _ in probes.values()])
            if note:
                notes.append(note)
            for message_id, (_, arrived) in probes.items():
                found[message_id] = Found(message_id, seen, arrived, deleted=not note)

        look()
        if wait and len(found) < len(set(wanted)):
            idle = "IDLE" in client.capabilities
            method = "IDLE" if idle else "polling"
            stage = "wait"
            backoff = intervals()
            while len(found) < len(set(wanted)):
                if idle and client.untagged_responses.pop("EXISTS", None):
                    pass  # announced while looking: look again before idling
                elif idle:
                    wait_until = deadline.within(deadline.end - clock() - LAST_LOOK)
                    if wait_until.end - clock() <= 0:
                        break
                    try:
                        arrived = client.idle(wait_until)
                    except IdleRefused as refused:
                        # advertised but refused (a proxy in front, a policy): poll instead
                        idle, method = False, "polling"
                        notes.append(f"{refused}; polling instead")
                        continue
                    if not arrived:
                        look()
                        break
                else:
                    if not pause(client.sock, next(backoff), deadline):
                        break
                    client.noop()
                look()
        stage = "logout"
        # the probes are handled; a lost goodbye harms nothing
        with contextlib.suppress(imaplib.IMAP4.error, OSError, DeadlineExceeded):
            client.logout()
        client = None
        return Report(found, method, tuple(notes))
    except DeadlineExceeded:
        if stage in ("wait", "logout"):
            return Report(found, method, tuple(notes))
        raise timed_out(stage, "IMAP", url) from None
    except imaplib.IMAP4.readonly:
        raise MailboxFailed(
            "folder", f"the folder {folder} is read-only: probes could not be deleted"
        ) from None
    except imaplib.IMAP4.abort as exc:
        text = transcript.scrub(_BYTES_REPR.sub(r"\1", str(exc)))
        text = text.removeprefix("unexpected response: ")
        if stage == "connect":
            raise MailboxFailed(stage, f"no IMAP greeting from {url}: {text}") from None
        raise MailboxFailed(stage, f"the IMAP connection broke ({stage}): {text}") from None
    except imaplib.IMAP4.error as exc:
        raise MailboxFailed(stage, f"IMAP error ({stage}): {transcript.scrub(str(exc))}") from None
    except OSError as exc:
        raise MailboxFailed(
            stage, f"the IMAP connection failed ({stage}): {exc.strerror or exc}"
        ) from None
    finally:
        if client is not None:
            with contextlib.suppress(OSError):
                client.shutdown()
