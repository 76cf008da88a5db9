"""Validated settings of one notify_sms_mail run: everything the options decided.

Kept apart from the parser and from delivery so that neither has to import the
other (delivery pulls in smtplib and ssl, which a suppressed run never needs).
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

MAX_LENGTH = 900
"""Longest --max-length: one 7bit body line stays far below SMTP's 998-octet limit."""
SMS_GSM_LENGTH = 160
"""One SMS in the GSM 7-bit alphabet, and the default --max-length."""
SMS_UCS2_LENGTH = 70
"""One SMS with any character outside that alphabet (UCS-2)."""


class Server(NamedTuple):
    host: str  # the name (for TLS host name checks and messages) or an IP address
    port: int

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"


class Auth(NamedTuple):
    user: str
    password: str

    def __repr__(self) -> str:  # a stray debug print must not show the secret
        return f"Auth(user={self.user!r}, password=<hidden>)"


class TlsPolicy(NamedTuple):
    require: bool = False  # refuse servers without STARTTLS, verify their certificate
    disable: bool = False  # never STARTTLS
    cafile: str | None = None  # trust these CAs instead of the system's


class Settings(NamedTuple):
    recipient: str
    sender: str
    servers: tuple[Server, ...]  # empty: deliver to the recipient domain's MX hosts
    mx_port: int
    resolver: tuple[str, int] | None
    helo: str
    tls: TlsPolicy
    auth: Auth | None
    timeout: float
    max_length: int
    throttle: float
    throttle_key: str
    state_file: Path
    types: frozenset[str]
    dry_run: bool
    check_command: tuple[str, ...]  # standalone mode when not empty
    check_timeout: float
    macro_options: dict[str, str | None]
    escalation: bool = True  # a worse PROBLEM inside the window is sent (--no-escalation)
    max_length_given: bool = False  # --max-length was set: no 70 for non-GSM-7 text
