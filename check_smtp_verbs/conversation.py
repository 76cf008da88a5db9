"""One connection under one deadline: where every step's command is sent and timed.

The plan (probe.py) says which steps to take; this module takes them: it opens the
connection, sends each step's command through the core client, reads and validates
the reply, and records what happened as a StepResult.  It judges nothing beyond
"may the walk go on".
"""

from __future__ import annotations

import _socket  # the C module under socket: see core/deadline.py
from typing import TYPE_CHECKING, Any

from check_smtp_verbs.core.client import Client, ConnectionClosed, InvalidReply, OutOfSync, Reply
from check_smtp_verbs.core.deadline import (
    Deadline,
    DeadlineExceeded,
    Resolve,
    clock,
    connect,
    resolve,
)
from check_smtp_verbs.core.transcript import Transcript
from check_smtp_verbs.settings import Settings
from check_smtp_verbs.steps import Step, StepFailed, StepResult, StepSkipped

if TYPE_CHECKING:
    from check_smtp_verbs.core.tls import TlsFacts


class Conversation:
    """One connection, its deadline and its transcript; runs steps and records them."""

    def __init__(
        self,
        settings: Settings,
        deadline: Deadline,
        transcript: Transcript,
        resolve: Resolve = resolve,
    ) -> None:
        self.settings = settings
        self.deadline = deadline
        self.resolve = resolve
        self.data_mode = False  # after a 3xx to DATA: anything sent now is message text
        self.message_sent_at: float | None = None
        self.message_id: str | None = None
        self.data_done_at: float | None = None  # clock() when the final dot was answered
        self.client = Client(None, transcript.client, transcript.server)
        self.transcript = transcript
        self.address: str | None = None
        self.usable = False  # connected, and the last reply was complete and valid
        self.tls: TlsFacts | None = None  # set by a successful TLS handshake
        self.skipped: set[str] = set()  # names of steps that turned out not to apply
        self.dane_lookup: Any = None  # --dane: the TLSA look-up (core.dns.TlsaLookup)
        self.dane: Any = None  # --dane: the verdict on the chain (dane.DaneReport)
        if settings.auth_secret is not None:
            transcript.add_secret(settings.auth_secret.reveal())
        if settings.mailbox_secret is not None:  # no output may show it, from either side
            transcript.add_secret(settings.mailbox_secret.reveal())

    def _timeout_text(self, awaited: str) -> str:
        return f"timeout after {self.settings.timeout:g}s waiting for {awaited}"

    def _timed_out(self, step: Step, started: float, awaited: str) -> StepResult:
        return StepResult(
            step, seconds=clock() - started, timed_out=True, error=self._timeout_text(awaited)
        )

    def connect(self) -> StepResult:
        """Resolve and open the TCP connection; time only the handshake itself."""
        s = self.settings
        step = Step("connect", "connect", f"connect to {s.host}:{s.port}", "the connection", None)
        started = clock()
        try:
            addresses = self.resolve(s.host, s.port, s.family, self.deadline)
        except DeadlineExceeded:
            return self._timed_out(step, started, f"the address of {s.host}")
        except OSError as exc:
            return StepResult(step, error=f"cannot resolve {s.host}: {_reason(exc)}")
        failure = StepResult(step, error=f"cannot connect to {s.host}:{s.port}")
        for address in addresses:
            shown = _format_address(address[4])
            started = clock()
            try:
                sock = connect(address, self.deadline)
            except DeadlineExceeded:
                return self._timed_out(step, started, f"the TCP connection to {shown}")
            except OSError as exc:
                failure = StepResult(
                    step,
                    seconds=clock() - started,
                    error=f"cannot connect to {shown}: {_reason(exc)}",
                )
                self.transcript.note(failure.error or "")
                continue
            seconds = clock() - started
            self.address = shown
            self.transcript.note(f"connected to {shown}")
            self.client.sock = sock
            self.usable = True
            return StepResult(step, seconds=seconds, expected=True)
        return failure

    def run(self, step: Step) -> StepResult:
        """Send one step's command, wait for its whole reply, and say what happened."""
        assert step.send is not None
        if step.expect is None:
            return self._run_without_reply(step)
        self.usable = False
        client = self.client
        client.sent_at = None  # the banner has no command: its time starts here, at connect
        started = clock()
        error: str | None = None
        timed_out = False
        try:
            step.send(self)
        except DeadlineExceeded:
            error = self._timeout_text(step.awaited)
            timed_out = True
        except StepSkipped as exc:
            self.usable = True
            return StepResult(step, lines=(self.transcript.scrub(str(exc)),), expected=True)
        except StepFailed as exc:  # refused before sending (STARTTLS or AUTH not offered)
            self.usable = exc.usable
            self.transcript.note(str(exc))
            seconds = None if client.sent_at is None else clock() - client.sent_at
            return StepResult(step, seconds=seconds, error=self.transcript.scrub(str(exc)))
        except InvalidReply as exc:
            error = f"invalid reply to {step.label}: {exc}"
        except OutOfSync as exc:
            error = f"out of sync before {step.label}: {exc}"
        except ConnectionClosed:
            error = f"connection closed by the server while waiting for {step.awaited}"
        except OSError as exc:
            error = f"{_reason(exc)} while waiting for {step.awaited}"
        sent = client.sent_at if client.sent_at is not None else started
        scrub = self.transcript.scrub  # a server may echo a secret back: not into any output
        if error is not None:
            return StepResult(step, seconds=clock() - sent, error=scrub(error), timed_out=timed_out)
        reply: Reply | None = client.last_reply
        assert reply is not None and client.replied_at is not None
        self.usable = True
        expected = step.expect.matches(reply.code)
        if expected and step.response is not None:
            from check_smtp_verbs.commands import reply_text  # only -R needs it

            expected = step.response.search(reply_text(reply.code, reply.lines)) is not None
        lines = tuple(scrub(line) for line in reply.lines)
        return StepResult(step, reply.code, lines, client.replied_at - sent, expected=expected)

    def start_data(self) -> None:
        reply = self.client.command("DATA")
        self.data_mode = 300 <= reply.code < 400

    def send_message(self) -> None:
        """The probe message and its final dot, then the (first) reply."""
        from check_smtp_verbs import message  # the email package: only for --data

        s = self.settings
        probe = message.build(s.sender or "", s.recipients, s.subject, s.helo)
        self.message_id = probe.message_id
        shown = f"[message: {probe.size} bytes, Message-ID {probe.message_id}]"
        self.data_mode = False
        self.client.message(probe.data, shown)
        self.message_sent_at = self.client.sent_at
        self.data_done_at = self.client.replied_at  # where the round trip's delivery starts

    def next_reply(self) -> None:
        """One more reply to the same dot (LMTP), timed from when the message was sent."""
        self.client.sent_at = self.message_sent_at
        self.client.read_reply()

    def send_proxy_header(self) -> str | None:
        """Write the PROXY header before anything is read; the error, if any."""
        from check_smtp_verbs import proxy

        s = self.settings
        try:
            sock = self.client.sock
            local, peer = sock.getsockname()[:2], sock.getpeername()[:2]
            source = local
            if s.proxy_source is not None:
                address, port = s.proxy_source
                source = (address, local[1] if port is None else port)
            assert s.proxy is not None
            self.transcript.client(proxy.describe(s.proxy, source, peer))
            sock.sendall(proxy.header(s.proxy, source, peer))
        except DeadlineExceeded:
            return self._timeout_text("the PROXY header to be sent")
        except OSError as exc:
            return f"cannot send the PROXY header: {_reason(exc)}"
        return None

    def _run_without_reply(self, step: Step) -> StepResult:
        """A step that is an action, not a command (the TLS handshake): time it, say why
        it failed."""
        assert step.send is not None
        self.usable = False
        started = clock()
        try:
            lines = step.send(self)
        except DeadlineExceeded:
            return self._timed_out(step, started, step.awaited)
        except StepFailed as exc:
            self.usable = exc.usable
            self.transcript.note(str(exc))
            return StepResult(
                step, seconds=clock() - started, error=self.transcript.scrub(str(exc))
            )
        seconds = clock() - started
        self.usable = True
        shown = tuple(lines) if isinstance(lines, (tuple, list)) else ()
        self.transcript.note(f"{step.label}: {' '.join(shown)}".rstrip(": "))
        return StepResult(step, lines=shown, seconds=seconds if step.timed else None, expected=True)

    def close(self) -> None:
        self.client.close()


def _reason(exc: OSError) -> str:
    """A short, lower-case reason such as "connection refused" for an OSError."""
    if isinstance(exc, _socket.gaierror):
        return (
            "name does not resolve"
            if exc.errno in (_socket.EAI_NONAME, _socket.EAI_NODATA)
            else (exc.strerror or str(exc)).lower()
        )
    text = exc.strerror or str(exc) or type(exc).__name__
    return text[:1].lower() + text[1:]


def _format_address(sockaddr: tuple) -> str:
    host, port = sockaddr[0], sockaddr[1]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
