"""The test message sent with --data, built by the standard email package.

Imported only when --data is used: the email package costs start-up time that every
other check run would pay for nothing.  The message is a valid RFC 5322 message so
that a real MTA (content filters included) treats it like any other mail, and it says
what it is twice, in the Subject and in ``X-Check-SMTP-Verbs: probe``, so the
receiving site can file or discard it by a simple header rule.
"""

from __future__ import annotations

import re
from datetime import datetime, timezone
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime, make_msgid
from typing import NamedTuple

PROBE_HEADER = "X-Check-SMTP-Verbs"
_DOT_AT_LINE_START = re.compile(rb"^\.", re.MULTILINE)


class Probe(NamedTuple):
    data: bytes  # on the wire: CRLF line ends, dot-stuffed, ending in CRLF "." CRLF
    message_id: str
    size: int  # of the message itself, before dot-stuffing


def build(sender: str, recipients: tuple[str, ...], subject: str, helo: str) -> Probe:
    """The probe message for one run.

    The Message-ID's domain is the HELO name (or a reserved ``.invalid`` name for an
    address literal): make_msgid's default asks DNS for this host's FQDN, which can
    block.  A null sender gets a From of ``postmaster@<helo>``, since RFC 5322 wants one.
    """
    domain = helo if not helo.startswith("[") else "check-smtp-verbs.invalid"
    message = EmailMessage(policy=SMTP)
    message["Date"] = format_datetime(datetime.now(timezone.utc))
    message["Message-ID"] = message_id = make_msgid("check-smtp-verbs", domain=domain)
    message["From"] = sender or f"postmaster@{domain}"
    message["To"] = ", ".join(recipients) if recipients else "undisclosed-recipients:;"
    message["Subject"] = subject
    message[PROBE_HEADER] = "probe"
    message.set_content(
        f"This message was sent by check_smtp_verbs from {helo} to check that mail is\n"
        "accepted all the way to the end of DATA. It can be discarded.\n"
    )
    raw = message.as_bytes()
    wire = _DOT_AT_LINE_START.sub(b"..", raw)
    if not wire.endswith(b"\r\n"):
        wire += b"\r\n"
    return Probe(wire + b".\r\n", message_id, len(raw))
