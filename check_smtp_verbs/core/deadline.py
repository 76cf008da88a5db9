"""One deadline for the whole conversation, enforced on every blocking call.

smtplib's ``timeout`` is per socket operation: a server that dribbles one byte every
few hundred milliseconds keeps a "1 second" read alive for as long as it likes.  The
check promises that ``--timeout`` bounds the *whole* run, so every receive, send,
connect and name look-up is given only the time that is left, measured on a monotonic
clock.  Nothing in here sleeps.

The sockets are built on ``_socket``, the C module under the standard ``socket``
module, on purpose: importing ``socket`` turns every AF_*, SOCK_*, MSG_* and AI_*
constant into an IntEnum and loads ``selectors`` — a few milliseconds of every check
for names nobody reads.  ``socket.socket`` is a thin Python subclass of
``_socket.socket``; what this module uses (connect, recv, sendall, timeouts,
getaddrinfo) is the C class's own.  The TLS path imports ``ssl``, which brings the
full ``socket`` module anyway.
"""

from __future__ import annotations

import _socket
import threading
import time
from typing import Any, Callable

clock = time.perf_counter  # monotonic on every platform we run on, and the finest available


class DeadlineExceeded(Exception):
    """Raised instead of socket.timeout, so that no caller can mistake it for a network error.

    smtplib turns every OSError into SMTPServerDisconnected; this is deliberately not an
    OSError, so it travels untouched up to the step that was waiting.
    """


class Deadline:
    """A point on the monotonic clock after which nothing may block any more."""

    __slots__ = ("end", "seconds")

    def __init__(self, seconds: float, start: float | None = None) -> None:
        self.seconds = seconds
        self.end = (clock() if start is None else start) + seconds

    def remaining(self) -> float:
        """Seconds left; raises DeadlineExceeded once none are."""
        left = self.end - clock()
        if left <= 0:
            raise DeadlineExceeded
        return left

    def within(self, seconds: float) -> Deadline:
        """A deadline that ends ``seconds`` from now or with this one, whichever is first."""
        child = Deadline(seconds)
        child.end = min(child.end, self.end)
        return child


class DeadlineBound:
    """Bounds every receive and send of a socket class by the conversation's deadline.

    A mixin, so the plain TCP socket and the TLS socket (tls.py) share one rule: each
    call gets only the time left, and running out is DeadlineExceeded, never a plain
    socket.timeout that a caller could take for a network error.
    """

    deadline: Deadline

    def recv_into(self, buffer: Any, nbytes: int = 0, flags: int = 0) -> int:
        self.settimeout(self.deadline.remaining())  # type: ignore[attr-defined]
        try:
            return super().recv_into(buffer, nbytes, flags)  # type: ignore[misc]
        except _socket.timeout:
            raise DeadlineExceeded from None

    def recv(self, bufsize: int, flags: int = 0) -> bytes:
        self.settimeout(self.deadline.remaining())  # type: ignore[attr-defined]
        try:
            return super().recv(bufsize, flags)  # type: ignore[misc]
        except _socket.timeout:
            raise DeadlineExceeded from None

    def recv_now(self, bufsize: int) -> bytes | None:
        """What can be read without waiting at all: bytes, b"" at end of stream, or
        None when nothing is there (a TLS socket may have read only a session ticket)."""
        self.settimeout(0.0)  # type: ignore[attr-defined]
        try:
            return super().recv(bufsize)  # type: ignore[misc,no-any-return]
        except (BlockingIOError, InterruptedError):
            return None
        except OSError as exc:  # ssl.SSLWantReadError, without importing ssl here
            if type(exc).__name__ in ("SSLWantReadError", "SSLWantWriteError"):
                return None
            raise

    def send(self, data: Any, flags: int = 0) -> int:
        self.settimeout(self.deadline.remaining())  # type: ignore[attr-defined]
        try:
            return super().send(data, flags)  # type: ignore[misc]
        except _socket.timeout:
            raise DeadlineExceeded from None

    def sendall(self, data: Any, flags: int = 0) -> None:
        self.settimeout(self.deadline.remaining())  # type: ignore[attr-defined]
        try:
            super().sendall(data, flags)  # type: ignore[misc]
        except _socket.timeout:
            raise DeadlineExceeded from None


class DeadlineSocket(DeadlineBound, _socket.socket):
    """A TCP socket whose every receive and send is bounded by the deadline."""


AddrInfo = tuple[int, int, int, str, Any]
# (host, port, family, deadline) -> addresses: the system resolver below, or DNS (core/dns.py)
Resolve = Callable[[str, int, int, "Deadline"], list[AddrInfo]]


def resolve(host: str, port: int, family: int, deadline: Deadline) -> list[AddrInfo]:
    """getaddrinfo bounded by the deadline.

    The C resolver cannot be interrupted, so it runs in a daemon thread that we stop
    waiting for when time is up; a hung DNS server then costs nothing past the deadline.
    """
    # getaddrinfo() runs every str host through the "idna" codec, whose first use
    # imports encodings.idna, stringprep and unicodedata: about 2 ms of every check.
    # An ASCII name or address is its own IDNA form, so it goes in as bytes.
    name: str | bytes = host.encode("ascii") if host.isascii() else host
    try:  # an IP address needs no look-up: no thread, no waiting
        return _socket.getaddrinfo(
            name, port, family, _socket.SOCK_STREAM, 0, _socket.AI_NUMERICHOST
        )
    except _socket.gaierror:
        pass
    outcome: list[Any] = []
    done = threading.Event()

    def look_up() -> None:
        try:
            outcome.append(_socket.getaddrinfo(name, port, family, _socket.SOCK_STREAM))
        except OSError as exc:
            outcome.append(exc)
        done.set()

    threading.Thread(target=look_up, name="resolve", daemon=True).start()
    if not done.wait(deadline.remaining()):
        raise DeadlineExceeded
    if isinstance(outcome[0], OSError):
        raise outcome[0]
    return outcome[0]


def connect(address: AddrInfo, deadline: Deadline) -> DeadlineSocket:
    """Open a TCP connection to one resolved address within the deadline."""
    family, kind, proto, _, sockaddr = address
    sock = DeadlineSocket(family, kind, proto)
    sock.deadline = deadline
    try:
        sock.settimeout(deadline.remaining())
        sock.connect(sockaddr)
    except _socket.timeout:
        sock.close()
        raise DeadlineExceeded from None
    except BaseException:
        sock.close()
        raise
    return sock
