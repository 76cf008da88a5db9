"""The conversation: walk the SMTP verbs one by one, timing and recording each.

The walk is a plan (a list of steps chosen from the settings) carried out over one
connection under one deadline.  A step knows what to send and which codes let the
walk go on; adding STARTTLS, AUTH or DATA means adding steps to the plan, not
branches to the walk.  The walk stops at the first reply it did not expect and still
says QUIT when the connection is in a state to hear it.  It judges nothing beyond
"may I go on": states are the contexts' business.
"""

from __future__ import annotations

import smtplib
import socket
from typing import TYPE_CHECKING, Callable, NamedTuple

from check_smtp_verbs.codes import CodeSet
from check_smtp_verbs.deadline import Deadline, DeadlineExceeded, clock, connect, resolve
from check_smtp_verbs.settings import EHLO_FALLBACK, Settings
from check_smtp_verbs.transcript import Transcript
from check_smtp_verbs.wire import InvalidReply, Reply, Wire

if TYPE_CHECKING:
    from check_smtp_verbs.tls import TlsFacts

Send = Callable[["Conversation"], object]


class StepFailed(Exception):
    """A step cannot go on for a reason that is not an SMTP reply (a failed TLS handshake,
    STARTTLS or an AUTH mechanism not offered); the message is what the user reads."""

    def __init__(self, message: str, usable: bool = False) -> None:
        super().__init__(message)
        self.usable = usable  # nothing half-sent: the server can still hear QUIT


class StepSkipped(Exception):
    """The step does not apply (STARTTLS=optional and not offered); the message says so."""


class Step(NamedTuple):
    name: str  # perfdata label: "rcpt", "rcpt_2"
    verb: str  # key for --expect, --warning-codes and time ranges: "rcpt"
    label: str  # what a human reads: "RCPT TO:<postmaster@example.net>"
    awaited: str  # "the RCPT reply", for "timeout after 10s waiting for ..."
    expect: CodeSet | None  # None: the step has no reply (connect)
    send: Send | None = None
    fallback: Step | None = None  # run when the reply is in EHLO_FALLBACK (EHLO -> HELO)


class StepResult(NamedTuple):
    step: Step
    code: int | None = None
    lines: tuple[str, ...] = ()
    seconds: float | None = None
    error: str | None = None  # why there is no usable reply
    timed_out: bool = False
    expected: bool = False  # the walk could go on after this step

    @property
    def text(self) -> str:
        return " ".join(line for line in self.lines if line)


class Walk(NamedTuple):
    host: str
    port: int
    address: str | None  # the IP address actually connected to
    results: tuple[StepResult, ...]
    total: float
    transcript: Transcript
    tls: TlsFacts | None = None  # what the TLS handshake showed, if there was one


def _step(name: str, verb: str, label: str, awaited: str, settings: Settings, send: Send) -> Step:
    return Step(name, verb, label, awaited, settings.expected(verb), send)


def plan(settings: Settings) -> list[Step]:
    """The steps after the banner, in order; QUIT is added by the walk itself."""
    helo = _step(
        "helo",
        "helo",
        f"HELO {settings.helo}",
        "the HELO reply",
        settings,
        lambda c: c.wire.helo(settings.helo),
    )
    if settings.helo_only:
        steps = [helo]
    else:
        ehlo = _step(
            "ehlo",
            "ehlo",
            f"EHLO {settings.helo}",
            "the EHLO reply",
            settings,
            lambda c: c.wire.ehlo(settings.helo),
        )
        steps = [ehlo._replace(fallback=helo)]
    steps += secure_steps(settings)
    if settings.sender is not None or settings.recipients:
        sender = settings.sender or ""
        steps.append(
            _step(
                "mail",
                "mail",
                f"MAIL FROM:<{sender}>",
                "the MAIL reply",
                settings,
                lambda c: c.wire.mail(sender),
            )
        )
    for number, recipient in enumerate(settings.recipients, start=1):
        name = "rcpt" if number == 1 else f"rcpt_{number}"
        steps.append(
            _step(
                name,
                "rcpt",
                f"RCPT TO:<{recipient}>",
                "the RCPT reply",
                settings,
                lambda c, r=recipient: c.wire.rcpt(r),
            )
        )
    return steps


def secure_steps(settings: Settings) -> list[Step]:
    """STARTTLS, the handshake and the second EHLO, then AUTH: right after EHLO."""
    steps = []
    if settings.starttls is not None:
        from check_smtp_verbs import tls

        steps += [
            _step("starttls", "starttls", "STARTTLS", "the STARTTLS reply", settings, tls.starttls),
            handshake_step(settings),
            _step(
                "ehlo_tls",
                "ehlo_tls",
                f"EHLO {settings.helo} (after STARTTLS)",
                "the EHLO reply after STARTTLS",
                settings,
                lambda c: c.wire.ehlo(settings.helo),
            ),
        ]
    if settings.auth_mech is not None:
        from check_smtp_verbs import auth

        steps.append(
            _step(
                "auth",
                "auth",
                auth.label(settings.auth_mech, settings.auth_user),
                "the AUTH reply",
                settings,
                auth.authenticate,
            )
        )
    return steps


def handshake_step(settings: Settings) -> Step:
    """The TLS handshake: timed as "tls", no SMTP reply (its failure is StepResult.error)."""
    from check_smtp_verbs import tls

    return Step("tls", "tls", "TLS handshake", "the TLS handshake", None, tls.handshake)


def banner_step(settings: Settings) -> Step:
    return _step("banner", "banner", "banner", "the banner", settings, lambda c: c.wire.getreply())


def quit_step(settings: Settings) -> Step:
    return _step("quit", "quit", "QUIT", "the QUIT reply", settings, lambda c: c.wire.docmd("QUIT"))


class Conversation:
    """One connection, its deadline and its transcript; runs steps and records them."""

    def __init__(self, settings: Settings, deadline: Deadline, transcript: Transcript) -> None:
        self.settings = settings
        self.deadline = deadline
        self.wire = Wire(settings.host, settings.helo, transcript)
        self.transcript = transcript
        self.address: str | None = None
        self.usable = False  # connected, and the last reply was complete and valid
        self.tls: TlsFacts | None = None  # set by a successful TLS handshake
        self.skipped: set[str] = set()  # names of steps that turned out not to apply
        if settings.auth_secret is not None:
            transcript.add_secret(settings.auth_secret.reveal())

    def _timeout_text(self, awaited: str) -> str:
        return f"timeout after {self.settings.timeout:g}s waiting for {awaited}"

    def connect(self) -> StepResult:
        """Resolve and open the TCP connection; time only the handshake itself."""
        s = self.settings
        step = Step("connect", "connect", f"connect to {s.host}:{s.port}", "the connection", None)
        started = clock()
        try:
            addresses = resolve(s.host, s.port, s.family, self.deadline)
        except DeadlineExceeded:
            return StepResult(
                step,
                seconds=clock() - started,
                timed_out=True,
                error=self._timeout_text(f"the address of {s.host}"),
            )
        except OSError as exc:
            return StepResult(step, error=f"cannot resolve {s.host}: {_reason(exc)}")
        failure = StepResult(step, error=f"cannot connect to {s.host}:{s.port}")
        for address in addresses:
            shown = _format_address(address[4])
            started = clock()
            try:
                sock = connect(address, self.deadline)
            except DeadlineExceeded:
                return StepResult(
                    step,
                    seconds=clock() - started,
                    timed_out=True,
                    error=self._timeout_text(f"the TCP connection to {shown}"),
                )
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
            self.wire.attach(sock)
            self.usable = True
            return StepResult(step, seconds=seconds, expected=True)
        return failure

    def run(self, step: Step) -> StepResult:
        """Send one step's command, wait for its whole reply, and say what happened."""
        assert step.send is not None
        if step.expect is None:
            return self._run_without_reply(step)
        self.usable = False
        wire = self.wire
        wire.sent_at = None  # the banner has no command: its time starts here, at connect
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
            seconds = None if wire.sent_at is None else clock() - wire.sent_at
            return StepResult(step, seconds=seconds, error=self.transcript.scrub(str(exc)))
        except InvalidReply as exc:
            error = f"invalid reply to {step.label}: {exc}"
        except smtplib.SMTPServerDisconnected:
            error = f"connection closed by the server while waiting for {step.awaited}"
        except OSError as exc:
            error = f"{_reason(exc)} while waiting for {step.awaited}"
        sent = wire.sent_at if wire.sent_at is not None else started
        scrub = self.transcript.scrub  # a server may echo a secret back: not into any output
        if error is not None:
            return StepResult(step, seconds=clock() - sent, error=scrub(error), timed_out=timed_out)
        reply: Reply | None = wire.last_reply
        assert reply is not None and wire.replied_at is not None
        self.usable = True
        return StepResult(
            step,
            reply.code,
            tuple(scrub(line) for line in reply.lines),
            wire.replied_at - sent,
            expected=step.expect.matches(reply.code),
        )

    def _run_without_reply(self, step: Step) -> StepResult:
        """A step that is an action, not a command (the TLS handshake): time it, say why
        it failed."""
        assert step.send is not None
        self.usable = False
        started = clock()
        try:
            lines = step.send(self)
        except DeadlineExceeded:
            return StepResult(
                step,
                seconds=clock() - started,
                error=self._timeout_text(step.awaited),
                timed_out=True,
            )
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
        return StepResult(step, lines=shown, seconds=seconds, expected=True)

    def close(self) -> None:
        self.wire.close()


def walk(settings: Settings) -> Walk:
    """Carry out the whole conversation and return what each step saw."""
    started = clock()
    deadline = Deadline(settings.timeout, start=started)
    transcript = Transcript()
    conversation = Conversation(settings, deadline, transcript)
    results = [conversation.connect()]
    try:
        if conversation.usable:
            quit_ = quit_step(settings)
            before = [handshake_step(settings)] if settings.implicit_tls else []
            for step in [*before, banner_step(settings), *plan(settings)]:
                if step.name in conversation.skipped:
                    continue
                result = conversation.run(step)
                if step.fallback is not None and EHLO_FALLBACK.matches(result.code):
                    results.append(result._replace(expected=True))
                    step = step.fallback
                    result = conversation.run(step)
                results.append(result)
                if not result.expected:
                    break
            if conversation.usable:
                results.append(conversation.run(quit_))
    finally:
        conversation.close()
    return Walk(
        settings.host,
        settings.port,
        conversation.address,
        tuple(results),
        clock() - started,
        transcript,
        conversation.tls,
    )


def _reason(exc: OSError) -> str:
    """A short, lower-case reason such as "connection refused" for an OSError."""
    if isinstance(exc, socket.gaierror):
        return (
            "name does not resolve"
            if exc.errno in (socket.EAI_NONAME, socket.EAI_NODATA)
            else (exc.strerror or str(exc)).lower()
        )
    text = exc.strerror or str(exc) or type(exc).__name__
    return text[:1].lower() + text[1:]


def _format_address(sockaddr: tuple) -> str:
    host, port = sockaddr[0], sockaddr[1]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
