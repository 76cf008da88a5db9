"""Judging and telling the round trip: one context, and the words for the status line.

Every mailbox-side problem names the hop it happened at, so that an operator reads at a
glance whether SMTP failed (the other contexts say so) or the mail got lost behind it:
"accepted by SMTP, not in the mailbox ... after 30 s" is a queue or delivery problem,
"accepted by SMTP; mailbox login failed for ..." a monitoring account problem.
"""

from __future__ import annotations

import nagiosplugin

from check_smtp_verbs.contexts import decimal
from check_smtp_verbs.roundtrip.trip import RoundTrip


def duration(seconds: float) -> str:
    """``1h``, ``90m``, ``45s``: --lost-after as a person would say it."""
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    seconds = round(seconds, 3)
    return f"{int(seconds) if seconds.is_integer() else decimal(seconds)}s"


def problem(
    trip: RoundTrip,
    lost_after: float,
    timeout_state: nagiosplugin.state.ServiceState = nagiosplugin.Critical,
) -> tuple[nagiosplugin.state.ServiceState, str]:
    """The state of the round trip and, when it is not OK, the words for it.

    A mailbox that did not answer in time gets the state of ``--timeout SECONDS:STATE``,
    like a silent SMTP server; a probe that did not come is CRITICAL whatever it says:
    the mailbox answered, the mail is what is missing.
    """
    if trip.error is not None:
        state = timeout_state if trip.error.timed_out else nagiosplugin.Critical
        return state, f"accepted by SMTP; {trip.error}"
    if trip.lost:
        probes = "1 probe" if trip.lost == 1 else f"{trip.lost} probes"
        return (
            nagiosplugin.Critical,
            f"{probes} lost: accepted by SMTP, not in the mailbox {trip.mailbox} "
            f"within {duration(lost_after)}",
        )
    if not trip.asynchronous and not trip.found:
        return (
            nagiosplugin.Critical,
            f"accepted by SMTP, not in the mailbox {trip.mailbox} "
            f"after {decimal(round(trip.waited, 1))} s",
        )
    if trip.store_problem is not None:
        return nagiosplugin.Warn, trip.store_problem
    return nagiosplugin.Ok, ""


def outcome(trip: RoundTrip) -> str:
    """How the round trip shows in an OK line."""
    if trip.asynchronous:
        # whole seconds: the server's arrival stamp has no finer resolution
        newest = "" if trip.delivery is None else f", newest delivery {trip.delivery:.0f}s"
        return f"mailbox {trip.mailbox}: {trip.pending} pending, {trip.lost} lost{newest}"
    if trip.delivery is None:
        return f"mailbox {trip.mailbox}: not found"
    return f"in the mailbox after {trip.delivery:.3f}s ({trip.method})"


def lines(trip: RoundTrip, verbosity: int) -> list[str]:
    """-v: the mailbox side; -vvv adds its transcript."""
    out = [outcome(trip)]
    if trip.asynchronous and not trip.found:
        out.append("this run's probe is pending: the next runs collect it")
    out += [f"late (still counted as lost): {message_id}" for message_id in trip.late]
    if trip.error is not None:
        out.append(f"mailbox error ({trip.error.stage}): {trip.error}")
    if trip.store_problem is not None:
        out.append(trip.store_problem)
    out += list(trip.notes)
    if verbosity >= 3 and trip.transcript is not None:
        out.append("mailbox transcript:")
        out += [f"{entry.direction}: {entry.text}" for entry in trip.transcript.entries]
    return out


def document(trip: RoundTrip, state: str) -> dict[str, object]:
    """--json: the round trip as an object."""
    return {
        "mailbox": trip.mailbox,
        "state": state,
        "mode": "asynchronous" if trip.asynchronous else "synchronous",
        "method": trip.method,
        "found": trip.found,
        "delivery_seconds": None if trip.delivery is None else round(trip.delivery, 6),
        "waited_seconds": round(trip.waited, 6),
        "pending": trip.pending,
        "lost": trip.lost,
        "late": list(trip.late),
        "notes": list(trip.notes),
        "error": None if trip.error is None else str(trip.error),
        "error_stage": None if trip.error is None else trip.error.stage,
        "state_file_problem": trip.store_problem,
    }


class MailboxContext(nagiosplugin.Context):
    """The "mailbox" metric: its value is the whole RoundTrip; no perfdata of its own
    (``delivery``, ``pending`` and ``lost`` carry the numbers)."""

    def __init__(
        self,
        lost_after: float,
        timeout_state: nagiosplugin.state.ServiceState = nagiosplugin.Critical,
    ) -> None:
        super().__init__("mailbox")
        self.lost_after = lost_after
        self.timeout_state = timeout_state

    def evaluate(self, metric: nagiosplugin.Metric, resource: object) -> nagiosplugin.Result:
        state, hint = problem(metric.value, self.lost_after, self.timeout_state)
        return nagiosplugin.Result(state, hint or None, metric)
