"""The mail that becomes an SMS: a short subject and a body that fits one text.

Gateways turn the body (some also the subject) into the SMS and cut whatever does
not fit, often in the middle of a multi-byte character.  So the body is built to
``--max-length`` characters here, most important first (type, what, state, how many
were suppressed, then the plugin output), and cut on a character boundary.  The
message itself is built with the standard ``email`` package, so it is valid RFC
5322 whatever the output contains, and carries a unique Message-ID.
"""

from __future__ import annotations

import re
import unicodedata
from email.message import EmailMessage
from email.utils import formatdate, make_msgid

from check_smtp_verbs.notify.macros import Notification

ELLIPSIS = "…"
SUBJECT_LENGTH = 60
_SPACE = re.compile(r"[\s\x00-\x1f\x7f]+")


def cut(text: str, limit: int) -> str:
    """``text`` in at most ``limit`` characters, ending in … when something was cut.

    The cut never separates a base character from the combining marks that follow
    it (an ``e`` from its accent), which a plain slice would.
    """
    if len(text) <= limit:
        return text
    if limit <= 0:
        return ""
    end = limit - 1
    while end > 0 and unicodedata.combining(text[end]):
        end -= 1
    return text[:end].rstrip() + ELLIPSIS


def one_line(text: str) -> str:
    """Newlines, tabs, other controls and runs of spaces as one space: an SMS has no
    room for layout, and a phone shows a stray escape character as garbage."""
    return _SPACE.sub(" ", text).strip()


def headline(notification: Notification) -> str:
    """``PROBLEM mx1/smtp-verbs CRITICAL``: what the alert is about, in one glance."""
    parts = (notification.type, notification.subject, notification.state)
    return " ".join(part for part in parts if part)


def subject(notification: Notification) -> str:
    return cut(headline(notification), SUBJECT_LENGTH)


def body(notification: Notification, note: str, limit: int) -> str:
    """``PROBLEM mx1/smtp-verbs CRITICAL (3 suppressed since 05:10): <output>``.

    The head (and the suppressed note) comes first and is cut last, so a long
    output can never push out what the alert is about.
    """
    head = headline(notification)
    if note:
        head = f"{head} ({note})"
    detail = one_line(" ".join(p for p in (notification.output, notification.long_output) if p))
    text = f"{head}: {detail}" if detail else head
    return cut(text, limit)


def build(
    notification: Notification,
    sender: str,
    recipient: str,
    note: str,
    limit: int,
    now: float,
) -> EmailMessage:
    """The complete message.

    ``make_msgid`` gets the sender's domain: without one it calls socket.getfqdn(),
    which can wait on DNS for seconds - exactly when DNS may be what is broken.
    """
    message = EmailMessage()
    message["From"] = sender
    message["To"] = recipient
    message["Subject"] = subject(notification)
    message["Date"] = formatdate(now, localtime=True)
    domain = sender.rpartition("@")[2] or "localhost"
    message["Message-ID"] = make_msgid("notify_sms_mail", domain=domain.strip("[]"))
    message["Auto-Submitted"] = "auto-generated"  # RFC 3834: no vacation replies to this
    text = body(notification, note, limit)
    # One plain line where it can be (7bit; what every gateway reads best), quoted-printable
    # when it holds non-ASCII characters, which then need no 8BITMIME from the gateway.
    message.set_content(text + "\n", cte="7bit" if text.isascii() else "quoted-printable")
    return message
