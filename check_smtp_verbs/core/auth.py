"""SMTP AUTH (RFC 4954) for both programs: PLAIN, LOGIN, CRAM-MD5 and XOAUTH2.

Why not smtplib's ``login()``/``auth()``: they encode the credentials as ASCII (a
UTF-8 user or password, which RFC 4616 and RFC 4954 allow, becomes a
UnicodeEncodeError), ``login()`` tries other mechanisms on its own (one wrong password
becomes several failed logins, and a lock-out sooner), and ``auth()`` raises on 535
instead of handing back the reply a check must judge.  The exchange itself is a few
lines: the initial response, then one answer per 334 challenge.

Every line sent here is shown in the transcript as a placeholder
(``AUTH PLAIN <redacted>``, then ``<redacted>`` for each answer); callers also
register the secret with their transcript, which scrubs it from anything recorded.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable

from check_smtp_verbs.core.client import Client, InvalidReply, Reply
from check_smtp_verbs.core.transcript import REDACTED

MAX_CHALLENGES = 3  # more 334s than any of these mechanisms needs: cancel with "*"
PREFERENCE = ("PLAIN", "LOGIN", "CRAM-MD5")  # what the notifier picks from, best first


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
    import hmac  # only CRAM-MD5 pays for hmac and hashlib

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


def offered(client: Client) -> list[str]:
    """The mechanisms the last EHLO listed, upper case."""
    return client.extensions.get("auth", "").upper().split()


def exchange(client: Client, mechanism: str, user: str, secret: str) -> Reply:
    """Run one AUTH exchange and return its last reply (235, 535, ...), unjudged."""
    initial, answer = MECHANISMS[mechanism]
    if initial is not None:
        # RFC 4954: "=" stands for an empty initial response
        response = _b64(initial(user, secret)) or "="
        reply = client.command(f"AUTH {mechanism} {response}", f"AUTH {mechanism} {REDACTED}")
    else:
        reply = client.command(f"AUTH {mechanism}")
    round_ = 0
    while reply.code == 334:
        text = reply.lines[-1] if reply.lines else ""
        try:
            challenge = base64.b64decode(text, validate=True)
        except (binascii.Error, ValueError):
            raise InvalidReply(f"the 334 challenge is not base64: {text[:40]!r}") from None
        answer_bytes = answer(user, secret, round_, challenge) if round_ < MAX_CHALLENGES else None
        round_ += 1
        if answer_bytes is None:
            return client.command("*")
        reply = client.command(_b64(answer_bytes), REDACTED)
    return reply
