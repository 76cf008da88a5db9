"""The validated description of one check run.

Everything the command line says is checked once, in cli.py (with the readers of
inputs.py), and lands here; the probe, contexts and summary read only this.
Nothing unchecked gets past it.

Unlike the other modules, this one evaluates its annotations (no ``from __future__
import annotations``, ``Optional[...]`` for Python 3.9): typing.NamedTuple compiles
every field's string annotation into a ForwardRef, and Settings has some sixty
fields, built on every run.  Names known only to type checkers are quoted.
"""

from typing import TYPE_CHECKING, NamedTuple, Optional

import nagiosplugin

from check_smtp_verbs.codes import CodeSet

if TYPE_CHECKING:  # only -C/-R/--command-expect load the module (cli.py)
    from check_smtp_verbs.commands import Command
    from check_smtp_verbs.roundtrip.url import MailboxURL  # only --imap/--pop3 load it

# What each verb must answer when nothing else is said (RFC 5321 4.3.2).
DEFAULT_EXPECT: dict[str, str] = {
    "banner": "220",
    "ehlo": "250",
    "helo": "250",
    "mail": "250",
    "rcpt": "250,251",
    "lhlo": "250",  # LMTP's EHLO (RFC 2033)
    "data": "354",
    "dot": "250",  # the reply after the message's final "."; one per recipient in LMTP
    "quit": "221",
    # TLS and AUTH (RFC 3207, RFC 4954)
    "starttls": "220",
    "ehlo_tls": "250",
    "auth": "235",
    # What the server must refuse (docs/addresses-and-refusals.md)
    "relay": "5xx",  # RCPT TO a --relay-test address
    "rset": "250",
    "mail_plain": "5xx",  # MAIL FROM before STARTTLS, with --starttls-required
}

# Every label that can carry a time: the verbs plus the parts of the walk without a reply
# ("tls" is the TLS handshake, "tlsa" the TLSA look-up of --dane).
TIMED = ("connect", "tlsa", "tls", *DEFAULT_EXPECT, "total")

STARTTLS_MODES = ("required", "optional")
PROTECTION_MODES = ("yes", "required")  # --dane / --mta-sts; bare: "yes"
AUTH_MECHANISMS = ("PLAIN", "LOGIN", "CRAM-MD5", "XOAUTH2")
TLS_VERSIONS = ("1.2", "1.3")

# RFC 5321 4.1.1.1: a server that does not know EHLO answers 500 or 502; HELO is tried then.
EHLO_FALLBACK = CodeSet.parse("500,502")

STATES: dict[str, nagiosplugin.state.ServiceState] = {
    "ok": nagiosplugin.Ok,
    "warning": nagiosplugin.Warn,
    "critical": nagiosplugin.Critical,
    "unknown": nagiosplugin.Unknown,
}


class Secret:
    """A password or token that cannot be printed by accident.

    Settings is a NamedTuple, whose repr lists every field: a traceback, a debug print
    or a log line showing the settings must not show the secret.  Only ``reveal()``
    gives it out, and only auth.py calls it.
    """

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret(<redacted>)"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


class Settings(NamedTuple):
    host: str
    port: int = 25
    family: int = 0  # socket.AF_UNSPEC, AF_INET or AF_INET6
    helo: str = "localhost"
    helo_only: bool = False
    sender: Optional[str] = None  # None: no MAIL FROM; "": the null reverse-path <>
    recipients: tuple[str, ...] = ()
    timeout: float = 10.0
    timeout_state: nagiosplugin.state.ServiceState = nagiosplugin.Critical
    expect: dict[str, CodeSet] = {}  # verb or step name (rcpt_2) -> codes
    banner_text: Optional[str] = None  # check_smtp's bare -e STRING: the banner must contain it
    banner_text_state: nagiosplugin.state.ServiceState = nagiosplugin.Warn
    warning_codes: dict[str, CodeSet] = {}  # verb or step name -> codes; "*": every verb
    time_warning: dict[str, nagiosplugin.Range] = {}  # verb, step name or "total" -> range
    time_critical: dict[str, nagiosplugin.Range] = {}
    ignore_quit: bool = False
    verbosity: int = 0
    # TLS (tls.py): starttls is None, "required" or "optional"; implicit_tls is SMTPS
    starttls: Optional[str] = None
    implicit_tls: bool = False
    sni: Optional[str] = None  # the name to send as SNI and to verify; None: the host
    ca_file: Optional[str] = None
    insecure: bool = False
    cert_days_warning: Optional[float] = None  # alert when fewer days are left
    cert_days_critical: Optional[float] = None
    tls_min_version: Optional[str] = None  # "1.2" or "1.3"
    # AUTH (auth.py)
    auth_mech: Optional[str] = None
    auth_user: Optional[str] = None
    auth_secret: Optional[Secret] = None
    allow_plaintext_auth: bool = False
    # Send-through, LMTP, custom verbs, PROXY, MX and JSON (docs/send-through-mx-json.md)
    data: bool = False
    subject: str = "check_smtp_verbs monitoring probe"
    quit_after: Optional[str] = None  # a verb after which the walk stops and says QUIT
    lmtp: bool = False
    commands: tuple["Command", ...] = ()
    proxy: Optional[int] = None  # PROXY protocol version 1 or 2
    proxy_source: Optional[tuple[str, Optional[int]]] = None  # None: the real local address
    mx: Optional[str] = None  # a mail domain whose every MX host is walked
    resolver: Optional[tuple[str, int]] = None  # DNS server for --mx; None: the system's
    json: bool = False
    # The round trip (roundtrip/): the mailbox the probe must reach, and how to get in.
    mailbox_url: Optional["MailboxURL"] = None
    mailbox_user: Optional[str] = None
    mailbox_secret: Optional[Secret] = None
    mailbox_folder: str = "INBOX"
    mailbox_starttls: str = "required"
    round_trip_state: Optional[str] = None  # asynchronous mode's state file
    lost_after: float = 3600.0  # seconds after which a probe not found is lost
    # DANE and MTA-STS (dane.py, mta_sts.py): None, "yes" or "required"
    dane: Optional[str] = None
    mta_sts: Optional[str] = None
    # Every address, and what the server must refuse (docs/addresses-and-refusals.md)
    all_addresses: bool = False  # walk every A and AAAA address of the host (or of each MX)
    require_families: dict[int, nagiosplugin.state.ServiceState] = {}  # AF_INET(6) -> state
    relay_tests: tuple[str, ...] = ()  # RCPT TO addresses that must be refused with 5xx
    relay_tempfail_state: nagiosplugin.state.ServiceState = nagiosplugin.Warn  # 4xx to them
    no_plaintext_auth: Optional[nagiosplugin.state.ServiceState] = None  # AUTH before TLS: state
    starttls_required: bool = False  # MAIL FROM before STARTTLS must be refused (5xx)
    tls_max_version: Optional[str] = None  # "1.2" or "1.3"
    forbid_tls_versions: tuple[str, ...] = ()  # "1.0", "1.1": a handshake with each must fail
    tls_only_version: Optional[str] = None  # the forbidden-version probe's own walk: offer only it

    @property
    def uses_tls(self) -> bool:
        return self.implicit_tls or self.starttls is not None

    def expected(self, verb: str) -> CodeSet:
        return self.expect.get(verb) or CodeSet.parse(DEFAULT_EXPECT[verb])

    def expected_for(self, name: str, verb: str, command: Optional["Command"] = None) -> CodeSet:
        """What one step must answer: ``--expect rcpt_2=`` wins over ``--expect rcpt=``.

        ``command`` is the -C/--command-expect behind the step, whose own codes come
        after the step name's and before the verb's.
        """
        if name in self.expect:
            return self.expect[name]
        if command is not None:
            return command.expected(self.expect)
        return self.expected(verb)

    @property
    def timed(self) -> tuple[str, ...]:
        """Every time label of this run: the built-in ones plus the -C commands' verbs."""
        extra = tuple(dict.fromkeys(c.verb for c in self.commands if c.verb not in TIMED))
        return TIMED + extra

    @property
    def step_timed(self) -> tuple[str, ...]:
        """Step names (rcpt_2, noop_2) with time ranges of their own: each gets a context."""
        keys = dict.fromkeys([*self.time_warning, *self.time_critical])
        return tuple(k for k in keys if k not in self.timed and k != "dns")
