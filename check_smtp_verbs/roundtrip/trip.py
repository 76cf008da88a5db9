"""The round trip as the check runs it: one call after DATA, one result to judge and show.

Synchronous (the default): after the server accepted the probe, visit the mailbox and
wait for that probe until the deadline; ``delivery`` is the time from the end of DATA
to the moment the check saw it.  Asynchronous (``--round-trip-state FILE``): record the
probe, collect whatever earlier probes arrived without waiting, and count what is
still pending and what is lost; ``delivery`` is then the server's own arrival stamp of
the newest probe found, minus the time it was sent (whole seconds: IMAP's
INTERNALDATE and a Received date have no finer resolution).

Whatever goes wrong at the mailbox is a :class:`~.connection.MailboxFailed` in the
result, never an exception: the SMTP side's result stands on its own, and the
judgement can blame the right hop.
"""

from __future__ import annotations

import ssl
import time
from pathlib import Path
from typing import NamedTuple

from check_smtp_verbs.core.deadline import Deadline, clock
from check_smtp_verbs.core.transcript import Transcript
from check_smtp_verbs.roundtrip.connection import MailboxFailed, Report
from check_smtp_verbs.roundtrip.url import MailboxURL


class Mailbox(NamedTuple):
    """Where the probes land and how to get in: what the options said."""

    url: MailboxURL
    user: str
    password: str
    folder: str = "INBOX"  # IMAP only
    starttls: str = "required"  # for imap:// and pop3://: "required" or "optional"
    server_name: str | None = None  # the name to verify, if not the URL's host

    def __repr__(self) -> str:  # a traceback or debug print must not show the password
        return f"Mailbox({self.key!r}, password=<redacted>)"

    @property
    def key(self) -> str:
        """How the state file tells mailboxes apart."""
        folder = f" {self.folder}" if self.url.protocol == "imap" else ""
        return f"{self.url} {self.user}{folder}"


class RoundTrip(NamedTuple):
    """What the round trip showed, for judgement and presentation."""

    mailbox: str  # the URL, for messages: "imaps://mail.example.net:993"
    method: str  # "IDLE", "polling", "no wait"
    found: bool  # this run's probe (synchronous) was seen in the mailbox
    delivery: float | None  # seconds: end of DATA to visible (async: the newest found)
    waited: float  # seconds from the end of DATA until the check stopped looking
    pending: int | None = None  # asynchronous mode only
    lost: int | None = None
    late: tuple[str, ...] = ()  # lost probes that arrived after all
    notes: tuple[str, ...] = ()
    error: MailboxFailed | None = None
    store_problem: str | None = None  # the state file was corrupt or could not be used
    transcript: Transcript | None = None  # the mailbox side's lines, credentials redacted
    asynchronous: bool = False


def _visit(
    mailbox: Mailbox,
    wanted: set[str],
    deadline: Deadline,
    transcript: Transcript,
    context: ssl.SSLContext,
    wait: bool,
) -> Report:
    transcript.add_secret(mailbox.password)
    if mailbox.url.protocol == "imap":
        from check_smtp_verbs.roundtrip import imap

        return imap.visit(
            mailbox.url,
            mailbox.user,
            mailbox.password,
            wanted,
            deadline,
            transcript,
            context,
            folder=mailbox.folder,
            server_name=mailbox.server_name,
            starttls=mailbox.starttls,
            wait=wait,
        )
    from check_smtp_verbs.roundtrip import pop3

    return pop3.visit(
        mailbox.url,
        mailbox.user,
        mailbox.password,
        wanted,
        deadline,
        transcript,
        context,
        server_name=mailbox.server_name,
        starttls=mailbox.starttls,
        wait=wait,
    )


def synchronous(
    mailbox: Mailbox,
    message_id: str,
    sent: float,
    deadline: Deadline,
    context: ssl.SSLContext,
    transcript: Transcript,
) -> RoundTrip:
    """Wait for this run's probe; ``sent`` is core.deadline.clock() at the end of DATA."""
    try:
        report = _visit(mailbox, {message_id}, deadline, transcript, context, wait=True)
    except MailboxFailed as exc:
        return RoundTrip(
            str(mailbox.url), "", False, None, clock() - sent, error=exc, transcript=transcript
        )
    found = report.found.get(message_id)
    return RoundTrip(
        str(mailbox.url),
        report.method,
        found is not None,
        None if found is None else max(0.0, found.seen - sent),
        clock() - sent,
        notes=report.notes,
        transcript=transcript,
    )


def asynchronous(
    mailbox: Mailbox,
    state_path: Path,
    lost_after: float,
    message_id: str,
    sent: float,
    deadline: Deadline,
    context: ssl.SSLContext,
    transcript: Transcript,
    now: float | None = None,
) -> RoundTrip:
    """Record this run's probe (``sent`` in epoch seconds), collect the earlier ones.

    ``now`` is for tests that tell a story over hours; the check uses the real time.
    The state file is locked only while it is read and written, never while the
    mailbox is visited, so overlapping runs wait for each other only briefly.
    """
    from check_smtp_verbs.roundtrip.state import RoundTripState, StoreError

    started = clock()
    store = RoundTripState(state_path, mailbox.key)
    try:
        wanted = store.record_sent(message_id, sent, deadline)
    except StoreError as exc:
        return RoundTrip(
            str(mailbox.url),
            "no wait",
            False,
            None,
            0.0,
            store_problem=str(exc),
            transcript=transcript,
            asynchronous=True,
        )
    error = None
    report = Report({}, "no wait", ())
    try:
        report = _visit(mailbox, set(wanted), deadline, transcript, context, wait=False)
    except MailboxFailed as exc:
        error = exc
    arrivals = {
        mid: found.arrived if found.arrived is not None else time.time()
        for mid, found in report.found.items()
    }
    try:
        tally = store.settle(arrivals, time.time() if now is None else now, lost_after, deadline)
    except StoreError as exc:
        return RoundTrip(
            str(mailbox.url),
            report.method,
            message_id in report.found,
            None,
            clock() - started,
            error=error,
            store_problem=str(exc),
            transcript=transcript,
            asynchronous=True,
        )
    return RoundTrip(
        str(mailbox.url),
        report.method,
        message_id in report.found,
        tally.newest_delivery,
        clock() - started,
        pending=tally.pending,
        lost=tally.lost,
        late=tally.late,
        notes=report.notes,
        error=error,
        store_problem="; ".join(store.problems) or None,
        transcript=transcript,
        asynchronous=True,
    )
