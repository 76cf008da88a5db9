"""The mailbox side's connection: TCP and TLS within the check's one deadline.

imaplib and poplib open their own sockets with a per-operation timeout, which a
server dribbling bytes can stretch without end.  Both clients here are given a
socket from :func:`open_socket` instead (a core.deadline.DeadlineSocket: every
receive and send gets only the time that is left) and a TLS layer from
:func:`wrap_tls`, core.tls's handshake, bounded the same way.  Certificates are
verified with the same rules as on the SMTP side (``--ca-file``/``--insecure``).
"""

from __future__ import annotations

import socket
import ssl
from typing import Any, NamedTuple

from check_smtp_verbs.core.deadline import (
    Deadline,
    DeadlineBound,
    DeadlineExceeded,
    connect,
    resolve,
)
from check_smtp_verbs.core.tls import DeadlineSSLSocket, TlsError, handshake
from check_smtp_verbs.core.tls import client_context as tls_context
from check_smtp_verbs.core.transcript import Transcript
from check_smtp_verbs.roundtrip.url import MailboxURL


class MailboxFailed(Exception):
    """The mailbox could not be checked; the message is the one line the user reads.

    ``stage`` says which part failed ("connect", "tls", "login", "folder", "protocol",
    "delete"), so that the status line can blame the mailbox and not the SMTP hop, and
    a login failure reads differently from a server that is down.
    """

    def __init__(self, stage: str, message: str, timed_out: bool = False) -> None:
        super().__init__(message)
        self.stage = stage
        self.timed_out = timed_out


class Found(NamedTuple):
    """One probe seen in the mailbox."""

    message_id: str
    seen: float  # core.deadline.clock() when the check saw it (synchronous delivery time)
    arrived: float | None  # epoch seconds the server says it arrived, if it says (async mode)
    deleted: bool  # removed from the mailbox (or, without UIDPLUS, at least flagged)


class Report(NamedTuple):
    """What one visit to the mailbox showed."""

    found: dict[str, Found]  # by Message-ID
    method: str  # how the check waited: "IDLE", "polling"; "first look": it did not need to
    # ("no wait": it was told not to, in the asynchronous mode)
    notes: tuple[str, ...]  # what the user should know (probes left flagged, ...)


class MailboxSocket(DeadlineBound, socket.socket):
    """The deadline-bound TCP socket as a full ``socket.socket``.

    core.deadline builds its sockets on the C ``_socket.socket`` to spare every check
    the ``socket`` module; imaplib and poplib need ``makefile()``, which only the
    Python class has.  This path imports ``ssl`` (and so ``socket``) anyway.
    """


def open_socket(url: MailboxURL, deadline: Deadline) -> MailboxSocket:
    """A TCP connection to the first address of ``url.host`` that answers."""
    try:
        addresses = resolve(url.host, url.port, socket.AF_UNSPEC, deadline)
    except DeadlineExceeded:
        raise MailboxFailed("connect", f"timeout resolving {url.host}", timed_out=True) from None
    except OSError as exc:
        raise MailboxFailed("connect", f"cannot resolve {url.host}: {_reason(exc)}") from None
    problem = "no address"
    for address in addresses:
        try:
            raw = connect(address, deadline)
            sock = MailboxSocket(raw.family, raw.type, raw.proto, fileno=raw.detach())
            sock.deadline = deadline
            return sock
        except DeadlineExceeded:
            raise MailboxFailed(
                "connect", f"timeout connecting to the mailbox {url}", timed_out=True
            ) from None
        except OSError as exc:
            problem = _reason(exc)
    raise MailboxFailed("connect", f"cannot connect to the mailbox {url}: {problem}")


def wrap_tls(
    sock: socket.socket, context: ssl.SSLContext, server_name: str, deadline: Deadline
) -> DeadlineSSLSocket:
    """The SMTP side's bounded handshake (core.tls), its failures said of the mailbox.

    ``server_name`` is verified (unless the context says not to) and sent as SNI.
    """
    try:
        return handshake(sock, context, server_name, deadline)
    except DeadlineExceeded:
        raise MailboxFailed(
            "tls", f"timeout in the TLS handshake with the mailbox {server_name}", timed_out=True
        ) from None
    except TlsError as exc:
        raise MailboxFailed("tls", f"mailbox {exc}") from None


class DeadlineTransport:
    """What the IMAP and POP3 clients share: their socket comes from open_socket (and
    wrap_tls for imaps/pop3s), STARTTLS/STLS upgrades it with the same bounded
    handshake, and the transcript records what crosses the wire.

    A mixin before imaplib.IMAP4 or poplib.POP3: both call ``_create_socket`` from
    their own ``__init__``, which this one calls once the attributes are set.
    """

    sock: Any
    file: Any

    def __init__(
        self,
        url: MailboxURL,
        context: ssl.SSLContext,
        server_name: str,
        deadline: Deadline,
        transcript: Transcript,
    ) -> None:
        self._url = url
        self._context = context
        self._server_name = server_name
        self._deadline = deadline
        self._transcript = transcript
        super().__init__(url.host, url.port)  # type: ignore[call-arg]

    def _create_socket(self, timeout: object = None) -> object:
        sock = open_socket(self._url, self._deadline)
        if self._url.implicit_tls:
            return wrap_tls(sock, self._context, self._server_name, self._deadline)
        return sock

    def _upgrade(self) -> None:
        """After the server's go-ahead to STARTTLS/STLS: the handshake, a fresh reader.

        Whatever the server sent after its go-ahead stays in the old reader and is
        dropped: it must not be read as if it came over TLS.
        """
        self.sock = wrap_tls(self.sock, self._context, self._server_name, self._deadline)
        self.file = self.sock.makefile("rb")
        self._tls_established = True


def client_context(ca_file: str | None = None, insecure: bool = False) -> ssl.SSLContext:
    """The SMTP side's rules (``--ca-file`` replaces the system store, ``--insecure``
    verifies nothing), with OpenSSL checking the dates: the mailbox's certificate is
    not what the check reports on, only what it must be able to trust."""
    return tls_context(ca_file, verify=not insecure, own_date_check=False)


def _reason(exc: OSError) -> str:
    """The words of an OSError, without the errno number."""
    return exc.strerror or str(exc) or type(exc).__name__


_AWAITED = {
    "connect": "greeting",
    "tls": "STARTTLS reply",
    "login": "login reply",
    "folder": "folder's selection",
    "search": "search results",
    "delete": "deletion reply",
}


def timed_out(stage: str, protocol: str, url: MailboxURL) -> MailboxFailed:
    """What a deadline that ran out before the waiting began says: which reply never came."""
    awaited = _AWAITED.get(stage, "reply")
    return MailboxFailed(stage, f"timeout waiting for the {protocol} {awaited} from {url}", True)
