"""What both mailbox clients share: which message is a probe, and how long to wait between looks.

A message is the check's probe only if its Message-ID is one the check sent *and* it
carries the ``X-Check-SMTP-Verbs`` header: a Message-ID alone could be a copy, a
bounce quoting it or a message someone forged, and the check deletes what it finds,
so it must never take anything else for a probe.

Polling is the fallback, used only where the server cannot tell the check that mail
arrived (IMAP without IDLE; POP3, which shows the mailbox as it was at login).  The
back-off is bounded and documented: the first look is immediate, then the check waits
0.25 s, 0.5 s, 1 s, 2 s and then 4 s between looks, and stops waiting
:data:`LAST_LOOK` seconds before the deadline so that one last look still fits.  A
probe is therefore seen at most 4 s after it arrived (the measured delivery time is
that much too long at worst).  The waits happen on the open connection (``select``),
so anything the server says (a BYE, say) ends a wait at once; nothing sleeps blindly.
"""

from __future__ import annotations

import select
import socket
import ssl
from collections.abc import Collection, Iterator

from check_smtp_verbs.core.deadline import Deadline, clock

PROBE_HEADER = "X-Check-SMTP-Verbs"  # as check_smtp_verbs.message writes it
FIRST_INTERVAL = 0.25
LONGEST_INTERVAL = 4.0
LAST_LOOK = 0.25  # seconds kept free before the deadline for the last look


def intervals() -> Iterator[float]:
    """The waits between two looks: 0.25, 0.5, 1, 2, 4, 4, 4, ... seconds."""
    interval = FIRST_INTERVAL
    while True:
        yield interval
        interval = min(interval * 2, LONGEST_INTERVAL)


def pause(sock: socket.socket, seconds: float, deadline: Deadline) -> bool:
    """Wait up to ``seconds`` for the server to say something; False if the deadline
    leaves no time for another look after the wait."""
    left = deadline.end - clock()
    wait = min(seconds, left - LAST_LOOK)
    if wait <= 0:
        return False
    if isinstance(sock, ssl.SSLSocket) and sock.pending():
        return True  # decrypted bytes are waiting already
    select.select([sock], [], [], wait)
    return True


def header_fields(raw: bytes) -> dict[str, list[str]]:
    """Header fields by lower-cased name, folded lines joined (RFC 5322 2.2.3).

    Only the header part is read; a body never gets here (IMAP fetches two fields,
    POP3 TOP 0 sends no body lines).
    """
    fields: dict[str, list[str]] = {}
    name = None
    for line in raw.decode("utf-8", "replace").splitlines():
        if not line:
            break
        if line[0] in " \t" and name is not None:
            fields[name][-1] += " " + line.strip()
            continue
        key, colon, value = line.partition(":")
        if not colon:
            name = None
            continue
        name = key.strip().lower()
        fields.setdefault(name, []).append(value.strip())
    return fields


def probe_id(raw_header: bytes, wanted: Collection[str]) -> str | None:
    """The Message-ID if this header is one of the check's probes, else None."""
    fields = header_fields(raw_header)
    if PROBE_HEADER.lower() not in fields:
        return None
    ids = fields.get("message-id", [])
    if len(ids) != 1:
        return None
    message_id = " ".join(ids[0].split())
    return message_id if message_id in wanted else None
