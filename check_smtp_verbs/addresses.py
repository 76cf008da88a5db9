"""Validation of everything a user types that ends up on the SMTP wire.

Each value is checked before the first byte is sent, so a typo or an injected CR/LF
can never turn into an extra SMTP command: an address such as
``a@b>\\r\\nRCPT TO:<victim@x`` is refused here, not "handled" later.  The notifier
shares these rules so both programs accept and refuse the same addresses.
"""

from __future__ import annotations

import re

# RFC 5321 4.1.2: Local-part is a Dot-string or a Quoted-string.
_ATEXT = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]"
_DOT_STRING = rf"{_ATEXT}+(?:\.{_ATEXT}+)*"
_QUOTED = r'"(?:[\x20\x21\x23-\x5b\x5d-\x7e]|\\[\x20-\x7e])*"'
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_DOMAIN = rf"{_LABEL}(?:\.{_LABEL})*\.?"
_LITERAL = r"\[(?:[0-9.]+|IPv6:[0-9A-Fa-f:.]+)\]"
_MAILBOX = re.compile(rf"(?:{_DOT_STRING}|{_QUOTED})@(?:{_DOMAIN}|{_LITERAL})")
_HELO = re.compile(rf"{_DOMAIN}|{_LITERAL}")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class InvalidInput(ValueError):
    """A user-supplied value that must not reach the wire; the message is one line."""


def reject_control_characters(value: str, what: str) -> str:
    """Refuse CR, LF, NUL and other controls: the one rule every wire-bound text obeys."""
    found = _CONTROL.search(value)
    if found:
        raise InvalidInput(f"{what} contains the control character {found.group()!r}")
    return value


def mailbox(value: str, what: str, *, allow_null: bool = False) -> str:
    """Return ``value`` if it is an RFC 5321 mailbox (``postmaster`` alone included).

    ``allow_null`` admits the empty reverse-path ``<>`` for MAIL FROM, which is what
    sender-verification callouts use and what some probes must send.
    """
    reject_control_characters(value, what)
    if value in ("", "<>"):
        if allow_null:
            return ""
        raise InvalidInput(f"{what} must not be empty")
    if value.startswith("<") and value.endswith(">"):
        value = value[1:-1]
    if len(value) > 254:
        raise InvalidInput(f"{what} is longer than 254 characters")
    if value.lower() == "postmaster":
        return value
    if _MAILBOX.fullmatch(value):
        if len(value.rpartition("@")[0]) > 64:  # RFC 5321 4.5.3.1.1
            raise InvalidInput(f"{what} has a local part longer than 64 characters")
        return value
    raise InvalidInput(f"{what} is not a valid mail address: {value!r}")


def helo_name(value: str) -> str:
    """Return ``value`` if it is a domain or an address literal, as EHLO/HELO require."""
    reject_control_characters(value, "the HELO name")
    if len(value) <= 255 and _HELO.fullmatch(value):
        return value
    raise InvalidInput(
        f"the HELO name must be a domain or an address literal like [192.0.2.1]: {value!r}"
    )


def hostname(value: str) -> str:
    """Return ``value`` if it can name a host to connect to (name, IPv4 or IPv6 literal)."""
    reject_control_characters(value, "the host name")
    bare = value[1:-1] if value.startswith("[") and value.endswith("]") else value
    if bare and (re.fullmatch(_DOMAIN, bare) or re.fullmatch(r"[0-9A-Fa-f:.%a-z]+", bare)):
        return bare
    raise InvalidInput(f"invalid host name: {value!r}")


def domain(value: str, what: str) -> str:
    """Return ``value`` (lower-case, without a final dot) if it is a DNS domain name."""
    reject_control_characters(value, what)
    if len(value) <= 253 and re.fullmatch(_DOMAIN, value) and not re.fullmatch(r"[0-9.]+", value):
        return value.rstrip(".").lower()
    raise InvalidInput(f"{what} wants a domain name such as example.net, not {value!r}")
