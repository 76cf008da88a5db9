"""The mail that becomes an SMS: a short subject and a body that fits one text.

Gateways turn the body (some also the subject) into the SMS and cut whatever does
not fit, often in the middle of a multi-byte character.  So the body is built to
fit one SMS here, most important first (type, what, state, how many were
suppressed, then the plugin output), and cut on a character boundary.  The
message itself is built with the standard ``email`` package, so it is valid RFC
5322 whatever the output contains, and carries a unique Message-ID.

One SMS holds 160 characters of the GSM 7-bit alphabet (GSM 03.38; the characters
of its extension table, such as ``{`` and ``€``, take two), but only 70 once a
single character outside it appears, because the whole text then travels as
UCS-2.  A gateway that gets 71 such characters splits or cuts them on its own.
So the body is cut to ``--max-length`` GSM-7 characters when what is sent is all
GSM-7 (and then ends in ``...``: a ``…`` would itself force UCS-2), else to 70
UTF-16 units, unless the user chose a length for a gateway that concatenates.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable
from email.message import EmailMessage
from email.utils import formatdate, make_msgid

from check_smtp_verbs.notify.macros import Notification
from check_smtp_verbs.notify.settings import SMS_GSM_LENGTH, SMS_UCS2_LENGTH
from check_smtp_verbs.text import UNSAFE_CHARACTERS, escape

ELLIPSIS = "…"
GSM_ELLIPSIS = "..."
SUBJECT_LENGTH = 60
# Layout, controls, and the characters text.clean escapes (bidi controls, line
# separators, C1): none has a place in an SMS, and a phone shows them as garbage.
_SPACE = re.compile(f"[\\s{UNSAFE_CHARACTERS}]+")

GSM_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞ\x1bÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
"""GSM 03.38's default alphabet: one septet each."""
GSM_EXTENSION = frozenset("\x0c^{}\\[~]|€")
"""Its extension table: an escape septet plus one, so two each."""


def is_gsm(text: str) -> bool:
    """Whether ``text`` can travel in the GSM 7-bit alphabet (160 per SMS)."""
    return all(char in GSM_BASIC or char in GSM_EXTENSION for char in text)


def gsm_septets(char: str) -> int:
    return 2 if char in GSM_EXTENSION else 1


def utf16_units(char: str) -> int:
    """UCS-2 SMS are UTF-16 in practice: a character beyond U+FFFF (most emoji)
    takes two of the 70 units."""
    return 2 if ord(char) > 0xFFFF else 1


def _one(char: str) -> int:
    return 1


def size(text: str, weight: Callable[[str], int] = _one) -> int:
    return sum(map(weight, text))


def cut(
    text: str,
    limit: int,
    weight: Callable[[str], int] = _one,
    marker: str = ELLIPSIS,
) -> str:
    """``text`` in at most ``limit`` units (each character weighs ``weight(char)``),
    ending in ``marker`` when something was cut.

    The cut never separates a base character from the combining marks that follow
    it (an ``e`` from its accent), which a plain slice would.
    """
    if size(text, weight) <= limit:
        return text
    budget = limit - size(marker, weight)
    if budget < 0:
        return ""
    end = 0
    for char in text:
        budget -= weight(char)
        if budget < 0:
            break
        end += 1
    while end > 0 and unicodedata.combining(text[end]):
        end -= 1
    return text[:end].rstrip() + marker


def fit(text: str, limit: int = SMS_GSM_LENGTH, *, explicit: bool = False) -> str:
    """``text`` cut to one SMS: ``limit`` GSM-7 septets if what remains is all GSM-7,
    else the UCS-2 limit (70 UTF-16 units), or ``limit`` units if the user chose it.

    The GSM-7 cut is tried first even when a character outside GSM-7 appears: if it
    lies beyond the cut, what is sent is all GSM-7 and gets the full 160.
    """
    gsm = cut(text, limit, gsm_septets, GSM_ELLIPSIS)
    if is_gsm(gsm):
        return gsm
    return cut(text, limit if explicit else min(limit, SMS_UCS2_LENGTH), utf16_units)


def one_line(text: str) -> str:
    """Newlines, tabs, other controls and runs of spaces as one space: an SMS has no
    room for layout, and a phone shows a stray escape character as garbage."""
    return _SPACE.sub(" ", text).strip()


def headline(notification: Notification) -> str:
    """``PROBLEM mx1/smtp-verbs CRITICAL``: what the alert is about, in one glance."""
    parts = (notification.type, notification.subject, notification.state)
    return " ".join(part for part in parts if part)


def subject(notification: Notification) -> str:
    """At most 60 characters; some gateways put it in front of the SMS, so a cut
    keeps GSM-7 text GSM-7.

    CR and LF were refused with the macros; what else a line break is to Python
    (NEL, U+2028, U+2029), and bidi controls, are escaped: the email package
    refuses a header with a line break, which would cost the alert.
    """
    text = escape(headline(notification))
    return cut(text, SUBJECT_LENGTH, marker=GSM_ELLIPSIS if is_gsm(text) else ELLIPSIS)


def body(notification: Notification, note: str, limit: int, *, explicit: bool = False) -> str:
    """``PROBLEM mx1/smtp-verbs CRITICAL (3 suppressed since 05:10): <output>``, fit
    to one SMS (see :func:`fit`; ``explicit``: the user chose ``limit``).

    The head (and the suppressed note) comes first and is cut last, so a long
    output can never push out what the alert is about.
    """
    head = headline(notification)
    if note:
        head = f"{head} ({note})"
    detail = one_line(" ".join(p for p in (notification.output, notification.long_output) if p))
    text = f"{head}: {detail}" if detail else head
    return fit(text, limit, explicit=explicit)


def build(
    notification: Notification,
    sender: str,
    recipient: str,
    note: str,
    limit: int,
    now: float,
    *,
    explicit: bool = False,
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
    text = body(notification, note, limit, explicit=explicit)
    # One plain line where it can be (7bit; what every gateway reads best), quoted-printable
    # when it holds non-ASCII characters, which then need no 8BITMIME from the gateway.
    message.set_content(text + "\n", cte="7bit" if text.isascii() else "quoted-printable")
    return message
