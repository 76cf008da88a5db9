"""SMTP AUTH (RFC 4954): the exchange for PLAIN, LOGIN, CRAM-MD5 and XOAUTH2.

Why not smtplib's ``login()``/``auth()``: they encode the credentials as ASCII (a
UTF-8 password, which RFC 4616 allows, becomes a UnicodeEncodeError), ``login()``
tries other mechanisms on its own, and ``auth()`` raises on 535 instead of handing
back the reply the check must judge.  The exchange itself is a few lines: the
initial response, then one answer per 334 challenge.

The secret is kept out of the record twice over: every line this module sends is
shown in the transcript as a placeholder (``AUTH PLAIN <redacted>``, then
``<redacted>`` for each answer), and the conversation registers the secret with
the transcript, which scrubs it, raw and base64-encoded, from anything recorded.
"""

from __future__ import annotations

import base64
import binascii
import hmac
from collections.abc import Callable
from typing import TYPE_CHECKING

from check_smtp_verbs.steps import StepFailed
from check_smtp_verbs.transcript import REDACTED
from check_smtp_verbs.wire import InvalidReply

if TYPE_CHECKING:
    from check_smtp_verbs.probe import Conversation

MAX_CHALLENGES = 3  # more 334s than any of our mechanisms needs: cancel with "*"


class AuthRefused(StepFailed):
    """AUTH cannot be attempted; nothing was sent, the connection is still usable."""

    def __init__(self, message: str) -> None:
        super().__init__(message, usable=True)


def _plain(user: str, secret: str) -> bytes:
    return f"\0{user}\0{secret}".encode()


def _xoauth2(user: str, secret: str) -> bytes:
    return f"user={user}\x01auth=Bearer {secret}\x01\x01".encode()


# mechanism -> (initial response or None, answer for the n-th challenge)
Answer = Callable[[str, str, int, bytes], "bytes | None"]


def _login_answer(user: str, secret: str, round_: int, challenge: bytes) -> bytes | None:
    return (user.encode(), secret.encode())[round_] if round_ < 2 else None


def _cram_md5_answer(user: str, secret: str, round_: int, challenge: bytes) -> bytes | None:
    if round_ > 0:
        return None
    digest = hmac.new(secret.encode(), challenge, "md5").hexdigest()
    return f"{user} {digest}".encode()


def _xoauth2_answer(user: str, secret: str, round_: int, challenge: bytes) -> bytes | None:
    # The 334 carries the error as JSON; an empty answer makes the server send its 5xx.
    return b"" if round_ == 0 else None


def _no_answer(user: str, secret: str, round_: int, challenge: bytes) -> bytes | None:
    return None


MECHANISMS: dict[str, tuple[Callable[[str, str], bytes] | None, Answer]] = {
    "PLAIN": (_plain, _no_answer),
    "LOGIN": (None, _login_answer),
    "CRAM-MD5": (None, _cram_md5_answer),
    "XOAUTH2": (_xoauth2, _xoauth2_answer),
}


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def label(mechanism: str, user: str | None) -> str:
    return f"AUTH {mechanism}" + (f" as {user}" if user else "")


def authenticate(conversation: Conversation) -> None:
    """Run the AUTH exchange; the last reply (235, 535, ...) is left on the wire."""
    settings = conversation.settings
    wire = conversation.wire
    mechanism = settings.auth_mech
    assert mechanism is not None and settings.auth_secret is not None
    if conversation.tls is None and not settings.allow_plaintext_auth:
        raise AuthRefused(
            "AUTH refused over a plaintext connection (STARTTLS was not offered); "
            "nothing was sent (--allow-plaintext-auth to allow it)"
        )
    if not wire.has_extn("auth"):
        raise AuthRefused("the server does not offer AUTH")
    offered = wire.esmtp_features.get("auth", "").upper().split()
    if mechanism not in offered:
        raise AuthRefused(
            f"the server does not offer AUTH {mechanism} (offers {' '.join(offered)})"
        )
    user = settings.auth_user or ""
    secret = settings.auth_secret.reveal()
    initial, answer = MECHANISMS[mechanism]
    if initial is not None:
        wire.shown_instead = f"AUTH {mechanism} {REDACTED}"
        # RFC 4954: "=" stands for an empty initial response
        code, message = wire.docmd("AUTH", f"{mechanism} {_b64(initial(user, secret)) or '='}")
    else:
        code, message = wire.docmd("AUTH", mechanism)
    round_ = 0
    while code == 334:
        try:
            challenge = base64.b64decode(message, validate=True)
        except (binascii.Error, ValueError):
            raise InvalidReply(f"the 334 challenge is not base64: {message[:40]!r}") from None
        response = answer(user, secret, round_, challenge) if round_ < MAX_CHALLENGES else None
        round_ += 1
        wire.shown_instead = REDACTED if response is not None else "*"
        code, message = wire.docmd(_b64(response) if response is not None else "*")
        if response is None:
            break
