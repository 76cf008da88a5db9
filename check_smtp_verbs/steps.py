"""The vocabulary of a walk: what a step is, what it showed, and what a whole walk is.

A leaf on purpose: the conversation, the TLS and AUTH steps, the judgement and the
presentation all speak of steps and walks, so these types must import nothing of
theirs, and every module can import them without a cycle.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Callable, NamedTuple

from check_smtp_verbs.codes import CodeSet
from check_smtp_verbs.core.transcript import Transcript

if TYPE_CHECKING:
    from check_smtp_verbs.core.dns import Lookup
    from check_smtp_verbs.core.tls import TlsFacts
    from check_smtp_verbs.roundtrip.trip import RoundTrip

Send = Callable[[Any], object]  # called with the Conversation that runs the step


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
    response: re.Pattern[str] | None = None  # -R: the reply must also match this
    # Replaced, when the walk reaches it, by the steps it returns for the results so far:
    # LMTP answers the final dot once per accepted recipient, known only by then.
    expand: Callable[[Sequence[StepResult]], list[Step]] | None = None
    # Another reply to the same command follows (LMTP's dot): read it even after an
    # unexpected one, or every later reply (QUIT's too) would be read one step late.
    more_replies: bool = False
    # A question the server should answer "no" to (a relay test, MAIL before STARTTLS):
    # whatever it answers is judged, and the walk goes on to RSET, STARTTLS and QUIT.
    goes_on: bool = False
    context: str = "reply"  # the nagiosplugin context that judges the result
    timed: bool = True  # False: a look at what is already known, no time worth a perfdata


class VersionProbe(NamedTuple):
    """--forbid-tls-version: one more connection that offered only ``version``."""

    version: str  # "1.0"
    accepted: bool | None  # None: the probe could not get as far as a handshake
    detail: str  # the negotiated cipher, the handshake's error, or why it did not get there
    seconds: float | None = None


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
    message_id: str | None = None  # of the --data message, when one was sent
    dane: Any = None  # --dane: dane.DaneReport (the TLSA look-up and the verdict)
    pkix_error: str | None = None  # --mta-sts: why PKIX failed (the walk was then repeated
    # without verification, so that the policy's mode, not the walk, judges the failure)
    data_done_at: float | None = None  # core.deadline.clock() when the final dot was answered
    version_probes: tuple[VersionProbe, ...] = ()  # --forbid-tls-version, one per version


class Target(NamedTuple):
    """Whom one walk went to, and how its metrics are told apart from other walks'.

    Carried with the walk so that no presentation has to guess from a label which host
    a metric belongs to: ``--mx`` prefixes every label with the host name, a per-address
    walk would prefix it with the address, a plain -H run has no prefix at all.
    """

    name: str  # what a human reads: "mx1.example.net"
    prefix: str = ""  # perfdata label prefix: "" for -H, "mx1.example.net_" for --mx
    preference: int | None = None  # the MX preference, when an MX record named the host
    address: str | None = None  # --all-addresses: the one address walked ("2001:db8::25")


class TargetWalk(NamedTuple):
    target: Target
    walk: Walk


class Run(NamedTuple):
    """A whole check run: one walk per target, and the DNS look-up that chose them.

    One shape for -H (one walk, no look-up) and --mx (one walk per MX host), so the
    plugin text and the JSON document are two renderings of the same record.
    """

    walks: tuple[TargetWalk, ...]
    total: float
    lookup: Lookup | None = None  # --mx: the MX look-up of the domain
    mta_sts: Any = None  # --mta-sts: mta_sts.StsReport (policy and verdict)
    tlsrpt: Any = None  # --dane/--mta-sts with --mx: tlsrpt.TlsRpt
    round_trip: RoundTrip | None = None  # --imap/--pop3: what the mailbox showed
    # --all-addresses: each host's families.AddressRun (its A/AAAA look-ups), in host
    # order; typed loosely because this leaf module may import none of the walk's modules
    addresses: tuple[Any, ...] | None = None

    @property
    def several(self) -> bool:
        """Whether labels carry a target prefix (and the text names hosts)."""
        return any(w.target.prefix for w in self.walks) or self.lookup is not None
