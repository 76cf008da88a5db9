"""``--imap URL`` and ``--pop3 URL``: where the mailbox is and how to secure the connection.

A URL rather than host, port and TLS options of their own: ``imaps://host`` says in
one word what takes three options on the SMTP side.  ``imap://`` and ``pop3://`` mean
STARTTLS (STLS), required unless the caller says otherwise: a mailbox password must
not cross the network in clear because a server forgot to offer TLS.

Credentials never go into the URL: the user has an option of its own, and the
password comes from a file or the environment, never from the command line.
"""

from __future__ import annotations

import re
from typing import NamedTuple
from urllib.parse import urlsplit

# scheme -> (protocol, default port, implicit TLS)
SCHEMES = {
    "imap": ("imap", 143, False),
    "imaps": ("imap", 993, True),
    "pop3": ("pop3", 110, False),
    "pop3s": ("pop3", 995, True),
}
_HOST = re.compile(r"^(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.?)+$|^[0-9.]+$")


class MailboxURL(NamedTuple):
    protocol: str  # "imap" or "pop3"
    scheme: str  # as written: "imaps"
    host: str  # an IPv6 address without brackets
    port: int
    implicit_tls: bool

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}:{self.port}"


def parse(text: str, protocol: str) -> MailboxURL:
    """The URL, or ValueError with one line that names what is wrong.

    ``protocol`` is what the option takes (``imap`` for --imap): ``--imap pop3://...``
    is a mistake worth saying so, not a silent switch of protocol.
    """
    if not text or any(ch.isspace() or ord(ch) < 0x20 or ord(ch) == 0x7F for ch in text):
        raise ValueError(f"{text!r} is not a URL (it is empty or has spaces or control characters)")
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError as exc:
        raise ValueError(f"{text!r} is not a usable URL: {exc}") from None
    scheme = parts.scheme.lower()
    if scheme not in SCHEMES or SCHEMES[scheme][0] != protocol:
        wanted = " or ".join(f"{s}://" for s, (p, _, _) in SCHEMES.items() if p == protocol)
        raise ValueError(f"{text!r} does not start with {wanted}")
    if parts.username is not None or parts.password is not None or "@" in parts.netloc:
        raise ValueError(
            f"{scheme}:// URL with a user name or password: give the user with its own "
            "option and the password from a file or the environment"
        )
    if parts.path not in ("", "/") or parts.query or parts.fragment or text.endswith(("?", "#")):
        raise ValueError(
            f"{text!r}: only {scheme}://host[:port] is understood (the folder has its own option)"
        )
    host = parts.hostname or ""
    if not host:
        raise ValueError(f"{text!r} names no host")
    if ":" not in host and not _HOST.match(host):
        raise ValueError(f"{text!r}: {host!r} is not a host name or address")
    _, default_port, implicit = SCHEMES[scheme]
    if port == 0:
        raise ValueError(f"{text!r}: port 0 is not a port")
    return MailboxURL(protocol, scheme, host, port or default_port, implicit)
