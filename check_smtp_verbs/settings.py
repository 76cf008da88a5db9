"""The validated description of one check run.

Everything the command line says is checked once, in cli.py, and lands here; the
probe, contexts and summary read only this.  Nothing unchecked gets past it.
"""

from __future__ import annotations

from typing import NamedTuple

import nagiosplugin

from check_smtp_verbs.codes import CodeSet

# What each verb must answer when nothing else is said (RFC 5321 4.3.2).
DEFAULT_EXPECT: dict[str, str] = {
    "banner": "220",
    "ehlo": "250",
    "helo": "250",
    "mail": "250",
    "rcpt": "250,251",
    "quit": "221",
}

# Every label that can carry a time: the verbs plus the parts of the walk without a reply.
TIMED = ("connect", *DEFAULT_EXPECT, "total")

# RFC 5321 4.1.1.1: a server that does not know EHLO answers 500 or 502; HELO is tried then.
EHLO_FALLBACK = CodeSet.parse("500,502")

STATES: dict[str, nagiosplugin.state.ServiceState] = {
    "ok": nagiosplugin.Ok,
    "warning": nagiosplugin.Warn,
    "critical": nagiosplugin.Critical,
    "unknown": nagiosplugin.Unknown,
}


class Settings(NamedTuple):
    host: str
    port: int = 25
    family: int = 0  # socket.AF_UNSPEC, AF_INET or AF_INET6
    helo: str = "localhost"
    helo_only: bool = False
    sender: str | None = None  # None: no MAIL FROM; "": the null reverse-path <>
    recipients: tuple[str, ...] = ()
    timeout: float = 10.0
    timeout_state: nagiosplugin.state.ServiceState = nagiosplugin.Critical
    expect: dict[str, CodeSet] = {}
    warning_codes: dict[str, CodeSet] = {}  # verb -> codes; "*" applies to every verb
    time_warning: dict[str, nagiosplugin.Range] = {}  # verb or "total" -> range
    time_critical: dict[str, nagiosplugin.Range] = {}
    ignore_quit: bool = False
    verbosity: int = 0

    def expected(self, verb: str) -> CodeSet:
        return self.expect.get(verb) or CodeSet.parse(DEFAULT_EXPECT[verb])
