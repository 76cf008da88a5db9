"""Extra verbs from the command line (-C/-R, --command-expect), checked before the wire.

check_smtp lets an admin send any command and match its reply against a regular
expression; that habit stays (same options, same pairing of the n-th -R with the n-th
-C), but each command also becomes a timed, judged step like the built-in verbs, keyed
by its verb for --expect, --warning-codes and --verb-warning.  A command that would
take the conversation somewhere the walk cannot follow (QUIT, DATA, STARTTLS, AUTH) is
refused with the option that does it properly.
"""

from __future__ import annotations

import re
from typing import NamedTuple

from check_smtp_verbs.addresses import InvalidInput, reject_control_characters
from check_smtp_verbs.codes import CodeSet

# RFC 5321 4.1.4 and 3.5: what the common session-level verbs answer when all is well.
COMMAND_EXPECT: dict[str, str] = {
    "noop": "250",
    "rset": "250",
    "vrfy": "250,251,252",
    "expn": "250,252",
    "help": "211,214",
    "ehlo": "250",
    "helo": "250",
    "lhlo": "250",
    "mail": "250",
    "rcpt": "250,251",
}
ANY_POSITIVE = "2xx"  # an unknown verb (XCLIENT, ETRN, ...) is fine when it completes
ANY_CODE = "2xx,3xx,4xx,5xx"  # with -R alone the regex, as in check_smtp, is the judge
MAX_COMMAND = 510  # RFC 5321 4.5.3.1.4: 512 octets per command line, CRLF included

_VERB = re.compile(r"[A-Za-z][A-Za-z0-9-]*")
# Labels of the walk that are not commands: a -C command with one of these words
# (``-C BANNER``, ``--tls -C TLS``) is keyed and labelled ``cmd_<word>`` so that its
# perfdata, its state and its --expect key can never merge with the walk's own.
RESERVED_LABELS = frozenset(
    {"banner", "connect", "tls", "total", "dns", "cert_days", "dot", "ehlo_tls", "delivery"}
)
_REFUSED = {
    "quit": "QUIT is sent by the check itself at the end of the walk",
    "data": "use --data to send DATA and a test message",
    "bdat": "BDAT cannot be sent as a single command; use --data",
    "starttls": "STARTTLS changes the connection; use the check's own TLS options",
    "auth": "AUTH needs a dialogue; use the check's own AUTH options",
}


class Command(NamedTuple):
    text: str  # exactly what is sent, without CRLF
    verb: str  # lower-case first word: the key for --expect, --warning-codes, time labels
    expect: CodeSet | None = None  # from --command-expect; None: --expect VERB or defaults
    response: re.Pattern[str] | None = None  # -R: searched in the reply, see reply_text()

    def expected(self, expect: dict[str, CodeSet]) -> CodeSet:
        """Codes that let the walk go on: this command's, else VERB's, else the defaults."""
        if self.expect is not None:
            return self.expect
        if self.verb in expect:
            return expect[self.verb]
        if self.response is not None:
            return CodeSet.parse(ANY_CODE)
        return CodeSet.parse(COMMAND_EXPECT.get(self.verb, ANY_POSITIVE))


def command(text: str, option: str = "--command") -> Command:
    """Validate one command line; raise InvalidInput with one line when it cannot be sent."""
    reject_control_characters(text, f"{option} {text!r}")
    text = text.strip()
    if not text:
        raise InvalidInput(f"{option} must not be empty")
    if not text.isascii():  # non-ASCII needs SMTPUTF8, which a bare command cannot ask for
        raise InvalidInput(f"{option} must be ASCII: {text!r}")
    if len(text) > MAX_COMMAND:
        raise InvalidInput(f"{option} is longer than {MAX_COMMAND} bytes (RFC 5321 4.5.3.1.4)")
    word = text.split(" ", 1)[0]
    if not _VERB.fullmatch(word):
        raise InvalidInput(f"{option}: {word!r} is not an SMTP verb")
    verb = word.lower()
    if verb in _REFUSED:
        raise InvalidInput(f"{option} {word}: {_REFUSED[verb]}")
    return Command(text, f"cmd_{verb}" if verb in RESERVED_LABELS else verb)


def response(pattern: str) -> re.Pattern[str]:
    try:
        return re.compile(pattern, re.MULTILINE)
    except re.error as exc:
        raise InvalidInput(f"--response: invalid regular expression {pattern!r}: {exc}") from None


def command_expect(value: str) -> Command:
    """``CMD=CODES``: a command with its own expected codes (split at the last ``=``)."""
    text, sep, codes = value.rpartition("=")
    if not sep or not text.strip() or not codes.strip():
        raise InvalidInput(f"--command-expect wants CMD=CODES, not {value!r}")
    found = command(text, "--command-expect")
    try:
        return found._replace(expect=CodeSet.parse(codes))
    except ValueError as exc:
        raise InvalidInput(f"--command-expect: {exc}") from None


def reply_text(code: int, lines: tuple[str, ...]) -> str:
    """The reply as the server sent it, one line per line, without CR/LF.

    This is what -R is searched in (re.search, so unanchored, with ^ and $ at every
    line): ``250-smtpd.test\\n250 PIPELINING``.  Like check_smtp, the code is part of
    the text, so ``-R '^250'`` and ``-R 'queued as'`` both work.
    """
    last = len(lines) - 1
    return "\n".join(
        f"{code}{'-' if n < last else (' ' if text else '')}{text}" for n, text in enumerate(lines)
    )
