"""The command line: parse, validate, then hand a Settings to the check.

Option names follow the stock check_smtp (``-H -p -f -F -e -w -c -t -q -4 -6``) so a
service can switch over by changing the command name.  Every value is validated
before anything is sent; a bad one ends the run with UNKNOWN (3) and one line,
never a traceback and never a half-sent conversation.
"""

from __future__ import annotations

import argparse
import math
import socket
import sys
from typing import NoReturn

import nagiosplugin

from check_smtp_verbs import __version__, addresses
from check_smtp_verbs.codes import CodeSet
from check_smtp_verbs.settings import DEFAULT_EXPECT, STATES, TIMED, Settings

PROG = "check_smtp_verbs"


class UsageError(Exception):
    """A bad option value; its message is the one line the user sees."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(message)


def _pair(value: str, option: str, known: tuple[str, ...] | list[str]) -> tuple[str, str]:
    verb, sep, rest = value.partition("=")
    verb = verb.strip().lower()
    if not sep or not rest.strip():
        raise UsageError(f"{option} wants VERB=VALUE, not {value!r}")
    if verb not in known:
        raise UsageError(f"{option}: unknown verb {verb!r} (known: {', '.join(known)})")
    return verb, rest.strip()


def _codes(value: str, option: str) -> CodeSet:
    try:
        return CodeSet.parse(value)
    except ValueError as exc:
        raise UsageError(f"{option}: {exc}") from None


def _range(value: str, option: str) -> nagiosplugin.Range:
    try:
        return nagiosplugin.Range(value)
    except (ValueError, TypeError):
        raise UsageError(
            f"{option}: invalid range {value!r} "
            "(want seconds like 2, 0.5 or a Nagios range like 1:5)"
        ) from None


def parse_timeout(value: str) -> tuple[float, nagiosplugin.state.ServiceState]:
    """``SECONDS[:STATE]`` as check_smtp takes it; STATE is a name or 0-3."""
    seconds, _, state = value.partition(":")
    try:
        timeout = float(seconds)
    except ValueError:
        raise UsageError(f"--timeout: {seconds!r} is not a number of seconds") from None
    if not math.isfinite(timeout) or timeout <= 0:
        raise UsageError(f"--timeout must be a positive number of seconds, not {seconds!r}")
    state = state.strip().lower()
    if not state:
        return timeout, nagiosplugin.Critical
    by_number = {str(int(s)): s for s in STATES.values()}
    chosen = STATES.get(state) or by_number.get(state)
    if chosen is None:
        raise UsageError(
            f"--timeout: unknown state {state!r} (ok, warning, critical, unknown or 0-3)"
        )
    return timeout, chosen


def _default_helo() -> str:
    """check_smtp's default: this machine's host name, when it is a usable HELO name."""
    try:
        return addresses.helo_name(socket.gethostname())
    except addresses.InvalidInput:
        return "localhost"


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog=PROG,
        description="Walk an SMTP conversation verb by verb (banner, EHLO, MAIL, RCPT, QUIT), "
        "time every verb and judge every reply code.",
        epilog="Verbs for --expect/--warning-codes: "
        + ", ".join(DEFAULT_EXPECT)
        + ". Time labels for --verb-warning/--verb-critical: "
        + ", ".join(TIMED)
        + ".",
    )
    a = p.add_argument
    a(
        "-H",
        "--hostname",
        required=True,
        metavar="HOST",
        help="server to check (name or IP address)",
    )
    a("-p", "--port", default="25", metavar="PORT", help="TCP port (default: 25)")
    family = p.add_mutually_exclusive_group()
    family.add_argument(
        "-4",
        "--use-ipv4",
        dest="family",
        action="store_const",
        const=socket.AF_INET,
        default=0,
        help="connect over IPv4 only",
    )
    family.add_argument(
        "-6",
        "--use-ipv6",
        dest="family",
        action="store_const",
        const=socket.AF_INET6,
        help="connect over IPv6 only",
    )
    a(
        "-F",
        "--fqdn",
        "--helo",
        dest="helo",
        metavar="NAME",
        help="name sent with EHLO/HELO (default: this host's name)",
    )
    a("--helo-only", action="store_true", help="send HELO instead of EHLO")
    a(
        "-f",
        "--from",
        dest="sender",
        metavar="ADDRESS",
        help="envelope sender for MAIL FROM ('' for the null sender <>)",
    )
    a(
        "--rcpt",
        dest="recipients",
        action="append",
        default=[],
        metavar="ADDRESS",
        help="recipient for RCPT TO (repeatable; without --from the sender is <>)",
    )
    a(
        "-e",
        "--expect",
        action="append",
        default=[],
        metavar="VERB=CODES",
        help="codes that VERB must answer, e.g. rcpt=250 or helo=220,250 or mail=2xx "
        "(a bare CODES applies to the banner, as in check_smtp)",
    )
    a(
        "--warning-codes",
        action="append",
        default=[],
        metavar="[VERB=]CODES",
        help="unexpected codes that are only WARNING, e.g. 4xx or rcpt=450,451",
    )
    a("-w", "--warning", metavar="RANGE", help="warning range for the total time in seconds")
    a("-c", "--critical", metavar="RANGE", help="critical range for the total time in seconds")
    a(
        "--verb-warning",
        action="append",
        default=[],
        metavar="VERB=RANGE",
        help="warning range for one verb's time, e.g. rcpt=0.5",
    )
    a(
        "--verb-critical",
        action="append",
        default=[],
        metavar="VERB=RANGE",
        help="critical range for one verb's time",
    )
    a(
        "-q",
        "--ignore-quit-failure",
        action="store_true",
        help="a bad or missing QUIT reply is OK instead of WARNING",
    )
    a(
        "-t",
        "--timeout",
        default="10",
        metavar="SECONDS[:STATE]",
        help="deadline for the whole run, and the state when it passes (default: 10:critical)",
    )
    a(
        "-v",
        "--verbose",
        action="count",
        default=0,
        help="-v: one line per verb; -vvv: the whole conversation",
    )
    a("--transcript", action="store_true", help="same as -vvv")
    a("-V", "--version", action="version", version=f"{PROG} {__version__}")
    return p


def settings_from(argv: list[str] | None = None) -> Settings:
    """Parse and validate the command line; raise UsageError with one line on bad input."""
    args = build_parser().parse_args(argv)
    try:
        host = addresses.hostname(args.hostname)
        helo = addresses.helo_name(args.helo) if args.helo is not None else _default_helo()
        sender = (
            None
            if args.sender is None
            else addresses.mailbox(args.sender, "--from", allow_null=True)
        )
        recipients = tuple(addresses.mailbox(r, "--rcpt") for r in args.recipients)
    except addresses.InvalidInput as exc:
        raise UsageError(str(exc)) from None
    try:
        port = int(args.port)
    except ValueError:
        port = -1
    if not 1 <= port <= 65535:
        raise UsageError(f"--port must be a number from 1 to 65535, not {args.port!r}")
    timeout, timeout_state = parse_timeout(args.timeout)

    verbs = list(DEFAULT_EXPECT)
    expect: dict[str, CodeSet] = {}
    for value in args.expect:
        verb, codes = _pair(value, "--expect", verbs) if "=" in value else ("banner", value)
        expect[verb] = _codes(codes, "--expect")
    warning_codes: dict[str, CodeSet] = {}
    for value in args.warning_codes:
        verb, codes = _pair(value, "--warning-codes", verbs) if "=" in value else ("*", value)
        codes_set = _codes(codes, "--warning-codes")
        warning_codes[verb] = (
            warning_codes[verb] | codes_set if verb in warning_codes else codes_set
        )
    time_warning = {
        v: _range(r, "--verb-warning")
        for v, r in (_pair(x, "--verb-warning", TIMED) for x in args.verb_warning)
    }
    time_critical = {
        v: _range(r, "--verb-critical")
        for v, r in (_pair(x, "--verb-critical", TIMED) for x in args.verb_critical)
    }
    if args.warning is not None:
        time_warning["total"] = _range(args.warning, "--warning")
    if args.critical is not None:
        time_critical["total"] = _range(args.critical, "--critical")

    return Settings(
        host=host,
        port=port,
        family=args.family,
        helo=helo,
        helo_only=args.helo_only,
        sender=sender,
        recipients=recipients,
        timeout=timeout,
        timeout_state=timeout_state,
        expect=expect,
        warning_codes=warning_codes,
        time_warning=time_warning,
        time_critical=time_critical,
        ignore_quit=args.ignore_quit_failure,
        verbosity=3 if args.transcript else min(args.verbose, 3),
    )


def build_check(settings: Settings) -> nagiosplugin.Check:
    from check_smtp_verbs.contexts import ReplyContext, time_contexts
    from check_smtp_verbs.resource import SmtpVerbs
    from check_smtp_verbs.summary import VerbsSummary

    resource = SmtpVerbs(settings)
    return nagiosplugin.Check(
        resource,
        ReplyContext(settings.warning_codes, settings.timeout_state, settings.ignore_quit),
        *time_contexts(TIMED, settings.time_warning, settings.time_critical),
        VerbsSummary(resource, settings.verbosity),
    )


def usage_exit(message: str) -> NoReturn:
    print(f"SMTP_VERBS UNKNOWN - {message}")
    sys.exit(3)


@nagiosplugin.guarded(verbose=0)
def main(argv: list[str] | None = None) -> None:
    try:
        settings = settings_from(argv)
    except UsageError as exc:
        usage_exit(str(exc))
    check = build_check(settings)
    # A safety net only: the probe's own deadline ends the run first and names the verb.
    check.main(verbose=settings.verbosity, timeout=math.ceil(settings.timeout) + 2)
