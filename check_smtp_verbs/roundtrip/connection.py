"""The mailbox side's connection: TCP and TLS within the check's one deadline.

imaplib and poplib open their own sockets with a per-operation timeout, which a
server dribbling bytes can stretch without end.  Both clients here are given a
socket from :func:`open_socket` instead (a core.deadline.DeadlineSocket: every
receive and send gets only the time that is left) and a TLS layer from
:func:`wrap_tls`, whose handshake is bounded the same way.  Certificates are
verified with the same rules as on the SMTP side: the caller hands in the
``ssl.SSLContext`` built from ``--ca-file``/``--insecure``.
"""

from __future__ import annotations

import re
import socket
import ssl
from typing import NamedTuple

from check_smtp_verbs.core.deadline import (
    Deadline,
    DeadlineBound,
    DeadlineExceeded,
    DeadlineSocket,
    connect,
    resolve,
)
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
    method: str  # how the check waited: "IDLE", "polling", "no wait"
    notes: tuple[str, ...]  # what the user should know (probes left flagged, ...)


class TLSSocket(DeadlineBound, ssl.SSLSocket):
    """A TLS socket bounded by the deadline like the TCP one underneath it."""


def open_socket(url: MailboxURL, deadline: Deadline) -> DeadlineSocket:
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
            return connect(address, deadline)
        except DeadlineExceeded:
            raise MailboxFailed(
                "connect", f"timeout connecting to the mailbox {url}", timed_out=True
            ) from None
        except OSError as exc:
            problem = _reason(exc)
    raise MailboxFailed("connect", f"cannot connect to the mailbox {url}: {problem}")


def wrap_tls(
    sock: socket.socket, context: ssl.SSLContext, server_name: str, deadline: Deadline
) -> TLSSocket:
    """Wrap ``sock`` in TLS and finish the handshake before the deadline.

    ``server_name`` is verified (unless the context says not to) and sent as SNI.
    The context's socket class is swapped for this one call: the deadline has to
    reach the TLS socket, whatever context the caller built (and may use again).
    """
    previous = context.sslsocket_class
    context.sslsocket_class = TLSSocket
    try:
        wrapped = context.wrap_socket(
            sock,
            server_hostname=server_name,
            do_handshake_on_connect=False,
        )
    except (ValueError, ssl.SSLError) as exc:
        sock.close()
        raise MailboxFailed("tls", f"TLS set-up failed: {_reason(exc)}") from None
    finally:
        context.sslsocket_class = previous
    assert isinstance(wrapped, TLSSocket)
    wrapped.deadline = deadline
    try:
        wrapped.settimeout(deadline.remaining())
        wrapped.do_handshake()
    except (socket.timeout, DeadlineExceeded):
        wrapped.close()
        raise MailboxFailed(
            "tls", "timeout in the TLS handshake with the mailbox", timed_out=True
        ) from None
    except ssl.SSLCertVerificationError as exc:
        wrapped.close()
        raise MailboxFailed(
            "tls", f"mailbox certificate verify failed: {_verify_reason(exc, server_name)}"
        ) from None
    except (ssl.SSLError, OSError) as exc:
        wrapped.close()
        raise MailboxFailed(
            "tls", f"TLS handshake with the mailbox failed: {_reason(exc)}"
        ) from None
    return wrapped


_SSL_NOISE = re.compile(r"^\[[^\]]*\]\s*|\s*\(_ssl\.c:\d+\)$")


def _reason(exc: BaseException) -> str:
    """The words of an OSError or SSLError, without errno numbers or OpenSSL file names."""
    if isinstance(exc, ssl.SSLError) and exc.args and isinstance(exc.args[-1], str):
        text = exc.args[-1]
    else:
        text = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
    return _SSL_NOISE.sub("", text).strip() or type(exc).__name__


def _verify_reason(exc: ssl.SSLCertVerificationError, server_name: str) -> str:
    if getattr(exc, "verify_code", None) in (62, 64):  # host name / IP address mismatch
        return f"name mismatch: the certificate is not valid for {server_name}"
    return getattr(exc, "verify_message", None) or _reason(exc)


def client_context(ca_file: str | None = None, insecure: bool = False) -> ssl.SSLContext:
    """A verifying client context (``ca_file`` replaces the system store), or with
    ``insecure`` one that verifies nothing: the SMTP side's rules, for callers and
    tests that have no context of their own."""
    if insecure:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        return context
    return ssl.create_default_context(cafile=ca_file)
