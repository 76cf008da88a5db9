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
from collections.abc import Sequence
from typing import TYPE_CHECKING, Callable

from check_smtp_verbs.core.deadline import (
    AddrInfo,
    Deadline,
    DeadlineExceeded,
    clock,
    connect,
    resolve,
)
from check_smtp_verbs.settings import EHLO_FALLBACK, Settings
from check_smtp_verbs.steps import Send, Step, StepFailed, StepResult, StepSkipped, Walk
from check_smtp_verbs.transcript import Transcript
from check_smtp_verbs.wire import InvalidReply, Reply, Wire

if TYPE_CHECKING:
    from check_smtp_verbs.tls import TlsFacts

Resolve = Callable[[str, int, int, Deadline], list[AddrInfo]]
# --quit-after VERB stops after the last step of any of these verbs, as swaks does:
# "ehlo" after the last greeting (the HELO fallback, LHLO, the EHLO after STARTTLS),
# "starttls" once TLS is up (after the handshake, not merely the 220).
_GREETINGS = frozenset({"ehlo", "helo", "lhlo", "ehlo_tls"})
QUIT_AFTER: dict[str, frozenset[str]] = {
    **dict.fromkeys(("ehlo", "helo", "lhlo"), _GREETINGS),
    "starttls": frozenset({"starttls", "tls"}),
}


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
    if settings.lmtp:
        steps = [
            _step(
                "lhlo",
                "lhlo",
                f"LHLO {settings.helo}",
                "the LHLO reply",
                settings,
                lambda c: _lhlo(c, settings.helo),
            )
        ]
    elif settings.helo_only:
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
    steps += command_steps(settings, steps)
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
    if settings.data:
        steps += data_steps(settings)
    return steps


def secure_steps(settings: Settings) -> list[Step]:
    """STARTTLS, the handshake and the second EHLO, then AUTH: right after EHLO."""
    steps = []
    if settings.starttls is not None:
        from check_smtp_verbs import tls

        greeting = "LHLO" if settings.lmtp else "EHLO"

        steps += [
            _step("starttls", "starttls", "STARTTLS", "the STARTTLS reply", settings, tls.starttls),
            handshake_step(settings),
            _step(
                "ehlo_tls",
                "ehlo_tls",
                f"{greeting} {settings.helo} (after STARTTLS)",
                f"the {greeting} reply after STARTTLS",
                settings,
                lambda c: _lhlo(c, settings.helo) if settings.lmtp else c.wire.ehlo(settings.helo),
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


def command_steps(settings: Settings, before: list[Step]) -> list[Step]:
    """The -C/--command-expect verbs: after the greeting (and MAIL FROM, as check_smtp).

    Each is named by its verb (``noop``, ``vrfy_2``), skipping names already taken.
    """
    taken = {step.name for step in before} | {"rcpt", "data", "dot"}
    taken |= {f"rcpt_{n}" for n in range(2, len(settings.recipients) + 1)}
    steps = []
    for command in settings.commands:
        name, number = command.verb, 1
        while name in taken:
            number += 1
            name = f"{command.verb}_{number}"
        taken.add(name)
        steps.append(
            Step(
                name,
                command.verb,
                command.text,
                f"the {command.verb.upper()} reply",
                command.expected(settings.expect),
                lambda c, text=command.text: c.wire.docmd(text),
                response=command.response,
            )
        )
    return steps


def handshake_step(settings: Settings) -> Step:
    """The TLS handshake: timed as "tls", no SMTP reply (its failure is StepResult.error)."""
    from check_smtp_verbs import tls

    return Step("tls", "tls", "TLS handshake", "the TLS handshake", None, tls.handshake)


def data_steps(settings: Settings) -> list[Step]:
    """DATA, then the message and its final dot; in LMTP one dot reply per recipient."""
    data = _step("data", "data", "DATA", "the DATA reply", settings, lambda c: c.start_data())
    dot = _step(
        "dot",
        "dot",
        "end of DATA",
        "the reply to the end of DATA",
        settings,
        lambda c: c.send_message(),
    )
    if not settings.lmtp:
        return [data, dot]
    recipients = {
        ("rcpt" if n == 1 else f"rcpt_{n}"): r for n, r in enumerate(settings.recipients, 1)
    }

    def per_recipient(results: Sequence[StepResult]) -> list[Step]:
        """RFC 2033 4.2: one reply after the dot for each recipient that got a 2xx."""
        accepted = [
            r.step.name
            for r in results
            if r.step.verb == "rcpt" and r.code is not None and 200 <= r.code < 300
        ]
        steps: list[Step] = []
        for rcpt in accepted:
            name = "dot" + rcpt[len("rcpt") :]
            recipient = recipients.get(rcpt, "")
            steps.append(
                dot._replace(
                    name=name,
                    label=f"end of DATA for <{recipient}>",
                    awaited=f"the reply to the end of DATA for <{recipient}>",
                    send=(lambda c: c.send_message()) if not steps else (lambda c: c.next_reply()),
                    more_replies=True,
                )
            )
        if steps:
            steps[-1] = steps[-1]._replace(more_replies=False)
        return steps or [dot]

    return [data, dot._replace(expand=per_recipient)]


def steps_of(settings: Settings) -> list[Step]:
    """(TLS handshake,) banner and plan, cut after the last step of --quit-after's verb."""
    before = [handshake_step(settings)] if settings.implicit_tls else []
    steps = [*before, banner_step(settings), *plan(settings)]
    if settings.quit_after is None:
        return steps
    if settings.quit_after == "connect":
        return []
    wanted = QUIT_AFTER.get(settings.quit_after, {settings.quit_after})
    last = max((n for n, step in enumerate(steps) if step.verb in wanted), default=len(steps))
    return steps[: last + 1]


def planned_verbs(settings: Settings) -> set[str]:
    """Every verb this run may stop after: what --quit-after accepts for these options."""
    verbs = {"connect", *(step.verb for step in steps_of(settings._replace(quit_after=None)))}
    return verbs | {alias for alias, meant in QUIT_AFTER.items() if meant & verbs}


def _lhlo(conversation: Conversation, name: str) -> object:
    """LHLO through smtplib's EHLO (as smtplib.LMTP does), so the extensions it lists,
    STARTTLS and AUTH included, are known to the later steps."""
    conversation.wire.ehlo_msg = "lhlo"
    return conversation.wire.ehlo(name)


def banner_step(settings: Settings) -> Step:
    return _step("banner", "banner", "banner", "the banner", settings, lambda c: c.wire.getreply())


def quit_step(settings: Settings) -> Step:
    return _step("quit", "quit", "QUIT", "the QUIT reply", settings, lambda c: c.wire.docmd("QUIT"))


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
        expected = step.expect.matches(reply.code)
        if expected and step.response is not None:
            from check_smtp_verbs.commands import reply_text  # only -R needs it

            expected = step.response.search(reply_text(reply.code, reply.lines)) is not None
        lines = tuple(scrub(line) for line in reply.lines)
        return StepResult(step, reply.code, lines, wire.replied_at - sent, expected=expected)

    def start_data(self) -> None:
        code, _ = self.wire.docmd("DATA")
        self.data_mode = 300 <= code < 400

    def send_message(self) -> None:
        """The probe message and its final dot, then the (first) reply."""
        from check_smtp_verbs import message  # the email package: only for --data

        s = self.settings
        probe = message.build(s.sender or "", s.recipients, s.subject, s.helo)
        self.message_id = probe.message_id
        self.wire.shown_instead = f"[message: {probe.size} bytes, Message-ID {probe.message_id}]"
        self.data_mode = False
        self.wire.send(probe.data)
        self.transcript.client(".")
        self.message_sent_at = self.wire.sent_at
        self.wire.getreply()

    def next_reply(self) -> None:
        """One more reply to the same dot (LMTP), timed from when the message was sent."""
        self.wire.sent_at = self.message_sent_at
        self.wire.getreply()

    def send_proxy_header(self) -> str | None:
        """Write the PROXY header before anything is read; the error, if any."""
        from check_smtp_verbs import proxy

        s = self.settings
        try:
            sock = self.wire.sock
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
        return StepResult(step, lines=shown, seconds=seconds, expected=True)

    def close(self) -> None:
        self.wire.close()


def walk(settings: Settings, deadline: Deadline | None = None, resolve: Resolve = resolve) -> Walk:
    """Carry out the whole conversation and return what each step saw.

    ``deadline`` and ``resolve`` let --mx run one walk per host, each with its own
    deadline inside the run's and with its addresses from the chosen DNS server.
    """
    started = clock()
    if deadline is None:
        deadline = Deadline(settings.timeout, start=started)
    transcript = Transcript()
    conversation = Conversation(settings, deadline, transcript, resolve)
    results = [conversation.connect()]
    try:
        if conversation.usable and settings.proxy is not None:
            problem = conversation.send_proxy_header()
            if problem is not None:
                results[0] = results[0]._replace(error=problem, expected=False)
                conversation.usable = False
        if conversation.usable:
            quit_ = quit_step(settings)
            steps = steps_of(settings)
            if settings.proxy is not None:
                # a server that rejects the header hangs up: say what it was waiting for
                awaited = f"the banner (after a PROXY v{settings.proxy} header)"
                steps = [s._replace(awaited=awaited) if s.verb == "banner" else s for s in steps]
            while steps:
                step = steps.pop(0)
                if step.name in conversation.skipped:
                    continue
                if step.expand is not None:
                    steps[:0] = step.expand(results)
                    continue
                result = conversation.run(step)
                if step.fallback is not None and EHLO_FALLBACK.matches(result.code):
                    results.append(result._replace(expected=True))
                    step = step.fallback
                    result = conversation.run(step)
                results.append(result)
                if not result.expected and not (step.more_replies and result.error is None):
                    break
            # After DATA's 354 a QUIT would be message text: hang up instead, which makes
            # the server drop the unfinished message (RFC 5321 4.1.1.4).
            may_quit = settings.quit_after != "connect" and not conversation.data_mode
            if conversation.usable and may_quit:
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
        conversation.message_id,
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
