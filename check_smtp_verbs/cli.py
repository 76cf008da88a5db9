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
from typing import TYPE_CHECKING, NoReturn

import nagiosplugin

from check_smtp_verbs import __version__, addresses
from check_smtp_verbs.codes import CodeSet
from check_smtp_verbs.settings import (
    AUTH_MECHANISMS,
    DEFAULT_EXPECT,
    STARTTLS_MODES,
    STATES,
    TIMED,
    TLS_VERSIONS,
    Secret,
    Settings,
)
from check_smtp_verbs.usage import Parser, UsageError

if TYPE_CHECKING:  # -C/-R/--command-expect load their module only when given
    from check_smtp_verbs.commands import Command

PROG = "check_smtp_verbs"


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
    p = Parser(
        prog=PROG,
        description="Walk an SMTP conversation verb by verb (banner, EHLO, MAIL, RCPT, QUIT), "
        "time every verb and judge every reply code.",
        epilog="Verbs for --expect/--warning-codes: "
        + ", ".join(DEFAULT_EXPECT)
        + ". Time labels for --verb-warning/--verb-critical: "
        + ", ".join(TIMED)
        + ". Both also take the verb of each -C command; --verb-warning takes dns with --mx.",
    )
    a = p.add_argument
    target = p.add_mutually_exclusive_group()
    target.add_argument(
        "-H",
        "--hostname",
        metavar="HOST",
        help="server to check (name or IP address)",
    )
    target.add_argument(
        "--mx",
        metavar="DOMAIN",
        help="check every MX host of DOMAIN concurrently (instead of -H)",
    )
    a("-p", "--port", metavar="PORT", help="TCP port (default: 25, with --tls 465)")
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
    add_extension_options(p)
    a("-V", "--version", action="version", version=f"{PROG} {__version__}")
    _add_tls_options(p)
    _add_auth_options(p)
    return p


def _add_tls_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("TLS").add_argument
    g(
        "-S",
        "--starttls",
        nargs="?",
        const="required",
        choices=STARTTLS_MODES,
        help="after EHLO, STARTTLS, the TLS handshake and EHLO again; 'optional': only "
        "when the server offers it (default when given: required)",
    )
    g("--tls", "--ssl", dest="tls", action="store_true", help="TLS from connect (SMTPS, port 465)")
    g("--sni", metavar="NAME", help="name to send as SNI and to verify the certificate for")
    g(
        "--ca-file",
        metavar="FILE",
        help="CA certificates to verify against, instead of the system's",
    )
    g(
        "--insecure",
        action="store_true",
        help="do not verify the certificate chain or name (its dates are still checked)",
    )
    g(
        "-D",
        "--certificate-days",
        "--certificate",
        dest="certificate_days",
        metavar="WARN[,CRIT]",
        help="days until the certificate expires below which to warn[, to go critical] "
        "(perfdata cert_days); alone, implies -S as in check_smtp",
    )
    g("--tls-min-version", choices=TLS_VERSIONS, help="a lower negotiated TLS version is CRITICAL")


def _add_auth_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("AUTH").add_argument
    g(
        "-A",
        "--auth-mech",
        "--authtype",
        dest="auth_mech",
        metavar="MECH",
        help="SMTP AUTH mechanism: " + ", ".join(AUTH_MECHANISMS),
    )
    g("-U", "--auth-user", "--authuser", dest="auth_user", metavar="USER", help="AUTH user name")
    g(
        "--auth-password-file",
        metavar="FILE",
        help="read the password (or XOAUTH2 bearer token) from the first line of FILE",
    )
    g(
        "--auth-password-env",
        metavar="NAME",
        help="take the password (or XOAUTH2 bearer token) from environment variable NAME",
    )
    g(
        "-P",
        "--auth-password",
        "--authpass",
        dest="auth_password",
        metavar="PASSWORD",
        help="the password on the command line (visible in the process list: avoid)",
    )
    g(
        "--allow-plaintext-auth",
        action="store_true",
        help="allow AUTH over a connection without TLS",
    )


_SECRET_OPTIONS = ("--auth-password", "--authpass")
MAX_SECRET = 16384  # far above any password or OAuth token; stops /dev/zero and friends


def _is_secret_option(arg: str) -> bool:
    """-P, --auth-password, --authpass, or an abbreviation argparse would accept."""
    name = arg.split("=", 1)[0]
    return arg.startswith("-P") or (
        name.startswith("--auth")
        and len(name) > 6
        and any(o.startswith(name) for o in _SECRET_OPTIONS)
    )


def scrub_argv(message: str, argv: list[str]) -> str:
    """Take any -P value out of an error message (argparse echoes unknown arguments)."""
    secrets = []
    for index, arg in enumerate(argv):
        if not _is_secret_option(arg):
            continue
        if arg.startswith("-P") and len(arg) > 2:
            secrets.append(arg[2:].removeprefix("="))
        elif "=" in arg:
            secrets.append(arg.split("=", 1)[1])
        elif index + 1 < len(argv):
            secrets.append(argv[index + 1])
    for secret in sorted((s for s in secrets if s), key=len, reverse=True):
        message = message.replace(secret, "<redacted>")
    return message


def _certificate_days(value: str) -> tuple[float | None, float | None]:
    """check_smtp's ``-D WARN[,CRIT]``: days left below which to warn, and to go critical."""
    warn_text, _, crit_text = value.partition(",")
    try:
        warn = float(warn_text)
        crit = float(crit_text) if crit_text.strip() else None
    except ValueError:
        raise UsageError(f"--certificate-days wants WARN[,CRIT] in days, not {value!r}") from None
    if not all(math.isfinite(x) and x >= 0 for x in (warn, crit if crit is not None else 0)):
        raise UsageError(f"--certificate-days: days must be 0 or more, not {value!r}")
    if crit is not None and crit > warn:
        raise UsageError(f"--certificate-days: CRIT ({crit:g}) must not exceed WARN ({warn:g})")
    return warn, crit


def _read_secret(args: argparse.Namespace) -> Secret | None:
    """The AUTH secret from exactly one source; files and variables are checked here."""
    sources = [
        name
        for name, value in (
            ("--auth-password-file", args.auth_password_file),
            ("--auth-password-env", args.auth_password_env),
            ("-P/--auth-password", args.auth_password),
        )
        if value is not None
    ]
    if len(sources) > 1:
        raise UsageError(f"give the AUTH secret one way only, not {' and '.join(sources)}")
    if not sources:
        return None
    if args.auth_password_file is not None:
        path = args.auth_password_file
        try:
            with open(path, encoding="utf-8") as file:
                secret = file.readline(MAX_SECRET + 2)
        except OSError as exc:
            raise UsageError(
                f"--auth-password-file: cannot read {path}: {exc.strerror or exc}"
            ) from None
        except UnicodeDecodeError:
            raise UsageError(f"--auth-password-file: {path} is not UTF-8 text") from None
        secret = secret.removesuffix("\n").removesuffix("\r")
        where = f"--auth-password-file {path}"
    elif args.auth_password_env is not None:
        import os

        name = args.auth_password_env
        secret = os.environ.get(name, "")
        if name not in os.environ:
            raise UsageError(f"--auth-password-env: the environment variable {name} is not set")
        where = f"the environment variable {name}"
    else:
        secret = args.auth_password
        where = "-P"
    if not secret:
        raise UsageError(f"the AUTH secret from {where} is empty")
    if len(secret) > MAX_SECRET:
        raise UsageError(f"the AUTH secret from {where} is longer than {MAX_SECRET} characters")
    try:
        secret.encode("utf-8")
    except UnicodeEncodeError:  # undecodable bytes in argv or the environment
        raise UsageError(f"the AUTH secret from {where} is not valid UTF-8") from None
    if "\0" in secret:
        raise UsageError(f"the AUTH secret from {where} contains a NUL byte")
    return Secret(secret)


def tls_and_auth_settings(args: argparse.Namespace, host: str) -> dict[str, object]:
    """The TLS and AUTH part of Settings, validated: nothing half-configured gets through."""
    if args.starttls is not None and args.tls:
        raise UsageError("use either -S/--starttls or --tls, not both")
    if args.certificate_days is not None and args.starttls is None and not args.tls:
        args.starttls = "required"  # check_smtp's -D alone checks the STARTTLS certificate
    uses_tls = args.starttls is not None or args.tls
    for option, given in (
        ("--sni", args.sni),
        ("--ca-file", args.ca_file),
        ("--insecure", args.insecure or None),
        ("--tls-min-version", args.tls_min_version),
    ):
        if given is not None and not uses_tls:
            raise UsageError(f"{option} needs -S/--starttls or --tls")
    if args.starttls is not None and args.helo_only:
        raise UsageError("STARTTLS needs EHLO: drop --helo-only")
    if args.insecure and args.ca_file is not None:
        raise UsageError("--ca-file has no effect with --insecure")
    sni = None
    if args.sni is not None:
        try:
            sni = addresses.hostname(args.sni)
        except addresses.InvalidInput as exc:
            raise UsageError(f"--sni: {exc}") from None
    if args.ca_file is not None:
        try:
            with open(args.ca_file, encoding="ascii", errors="replace") as file:
                pem = file.read(1 << 20)
        except OSError as exc:
            raise UsageError(
                f"--ca-file: cannot read {args.ca_file}: {exc.strerror or exc}"
            ) from None
        if "-----BEGIN CERTIFICATE-----" not in pem:
            raise UsageError(f"--ca-file: {args.ca_file} holds no PEM certificate")
    warn_days = crit_days = None
    if args.certificate_days is not None:
        warn_days, crit_days = _certificate_days(args.certificate_days)

    mech = args.auth_mech.upper() if args.auth_mech is not None else None
    if mech is not None and mech not in AUTH_MECHANISMS:
        raise UsageError(
            f"--auth-mech: unknown mechanism {args.auth_mech!r} "
            f"(known: {', '.join(AUTH_MECHANISMS)})"
        )
    secret = _read_secret(args)
    if mech is None:
        if args.auth_user is not None or secret is not None:
            raise UsageError("-U and the AUTH secret need -A/--auth-mech")
        if args.allow_plaintext_auth:
            raise UsageError("--allow-plaintext-auth needs -A/--auth-mech")
    else:
        if not args.auth_user:
            raise UsageError(f"AUTH {mech} needs -U/--auth-user")
        if any(c in args.auth_user for c in "\0\r\n"):
            raise UsageError("-U/--auth-user contains a control character")
        if secret is None:
            raise UsageError(
                f"AUTH {mech} needs a secret: --auth-password-file, --auth-password-env or -P"
            )
        if args.helo_only:
            raise UsageError("AUTH needs EHLO: drop --helo-only")
        if not uses_tls and not args.allow_plaintext_auth:
            raise UsageError(
                "AUTH without TLS would send the secret in plaintext: "
                "add -S/--starttls or --tls (or --allow-plaintext-auth)"
            )
    return {
        "starttls": args.starttls,
        "implicit_tls": args.tls,
        "sni": sni,
        "ca_file": args.ca_file,
        "insecure": args.insecure,
        "cert_days_warning": warn_days,
        "cert_days_critical": crit_days,
        "tls_min_version": args.tls_min_version,
        "auth_mech": mech,
        "auth_user": args.auth_user,
        "auth_secret": secret,
        "allow_plaintext_auth": args.allow_plaintext_auth,
    }


def add_extension_options(p: argparse.ArgumentParser) -> None:
    """Send-through, LMTP, extra verbs, PROXY, MX and JSON: kept apart from the core
    options so that each group reads (and merges) on its own."""
    a = p.add_argument
    a("--data", action="store_true", help="after RCPT, send DATA and a small test message")
    a(
        "--subject",
        default="check_smtp_verbs monitoring probe",
        metavar="TEXT",
        help="Subject of the --data message (default: %(default)s)",
    )
    a(
        "--quit-after",
        metavar="VERB",
        help="stop the walk after VERB (connect, banner, ehlo, starttls, auth, mail, rcpt, "
        "data) and say QUIT",
    )
    a("-L", "--lmtp", action="store_true", help="speak LMTP: LHLO instead of EHLO")
    a(
        "-C",
        "--command",
        dest="commands",
        action="append",
        default=[],
        type=lambda value: ("-C", value),
        metavar="CMD",
        help="extra command sent after EHLO (and MAIL FROM); repeatable",
    )
    a(
        "-R",
        "--response",
        dest="responses",
        action="append",
        default=[],
        metavar="REGEX",
        help="regular expression the reply to the n-th -C must match",
    )
    a(
        "--command-expect",
        dest="commands",
        action="append",
        type=lambda value: ("--command-expect", value),
        metavar="CMD=CODES",
        help="extra command with the codes it must answer, e.g. 'VRFY postmaster=250,252'",
    )
    a(
        "-r",
        "--proxy",
        nargs="?",
        const="v1",
        choices=("v1", "v2"),
        help="send a HAProxy PROXY header before the banner (default when given bare: v1, "
        "as check_smtp 2.4's -r)",
    )
    a(
        "--proxy-source",
        metavar="ADDR[:PORT]",
        help="client address in the PROXY header (default: the real one)",
    )
    a(
        "--resolver",
        metavar="IP[:PORT]",
        help="DNS server for --mx and for -H names (default: the system's)",
    )
    a("--json", action="store_true", help="print one JSON document instead of plugin text")


def _commands(args: argparse.Namespace) -> tuple[Command, ...]:
    """-C and --command-expect in command-line order; the n-th -R goes with the n-th -C."""
    if not args.commands and not args.responses:
        return ()
    from check_smtp_verbs import commands as command_module

    commands: list[Command] = []
    plain: list[int] = []
    for option, value in args.commands:
        if option == "-C":
            plain.append(len(commands))
            commands.append(command_module.command(value))
        else:
            commands.append(command_module.command_expect(value))
    if len(args.responses) > len(plain):
        raise UsageError(
            f"{len(args.responses)} --response (-R) but only {len(plain)} --command (-C): "
            "each -R pairs with the -C at the same position"
        )
    for index, pattern in zip(plain, args.responses):
        commands[index] = commands[index]._replace(response=command_module.response(pattern))
    return tuple(commands)


def _resolver(value: str | None) -> tuple[str, int] | None:
    if value is None:
        return None
    from check_smtp_verbs.proxy import parse_source

    try:
        address, port = parse_source(value)
    except ValueError as exc:
        raise UsageError(f"--resolver: {exc}") from None
    if port == 0:
        raise UsageError("--resolver: port 0 is not a DNS server port")
    return address, 53 if port is None else port


def settings_from(argv: list[str] | None = None) -> Settings:
    """Parse and validate the command line; raise UsageError with one line on bad input."""
    args = build_parser().parse_args(argv)
    if args.hostname is None and args.mx is None:
        raise UsageError("the following arguments are required: -H/--hostname (or --mx DOMAIN)")
    try:
        if args.mx is not None:
            host = addresses.domain(args.mx, "--mx")
        else:
            host = addresses.hostname(args.hostname)
        commands = _commands(args)
        addresses.reject_control_characters(args.subject, "--subject")
        helo = addresses.helo_name(args.helo) if args.helo is not None else _default_helo()
        sender = (
            None
            if args.sender is None
            else addresses.mailbox(args.sender, "--from", allow_null=True)
        )
        recipients = tuple(addresses.mailbox(r, "--rcpt") for r in args.recipients)
    except addresses.InvalidInput as exc:
        raise UsageError(str(exc)) from None
    secure = tls_and_auth_settings(args, host)
    try:
        port = int(args.port) if args.port is not None else (465 if args.tls else 25)
    except ValueError:
        port = -1
    if not 1 <= port <= 65535:
        raise UsageError(f"--port must be a number from 1 to 65535, not {args.port!r}")
    timeout, timeout_state = parse_timeout(args.timeout)

    verbs = list(dict.fromkeys([*DEFAULT_EXPECT, *(c.verb for c in commands)]))
    timed = list(dict.fromkeys([*TIMED, *(c.verb for c in commands)]))
    if args.mx is not None:
        timed.append("dns")  # the MX look-up
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
        for v, r in (_pair(x, "--verb-warning", timed) for x in args.verb_warning)
    }
    time_critical = {
        v: _range(r, "--verb-critical")
        for v, r in (_pair(x, "--verb-critical", timed) for x in args.verb_critical)
    }
    if args.warning is not None:
        time_warning["total"] = _range(args.warning, "--warning")
    if args.critical is not None:
        time_critical["total"] = _range(args.critical, "--critical")

    if args.lmtp and args.helo_only:
        raise UsageError("--lmtp and --helo-only exclude each other: LMTP has only LHLO")
    if args.data and not recipients:
        raise UsageError("--data needs at least one --rcpt")
    proxy_source = None
    if args.proxy_source is not None:
        if args.proxy is None:
            raise UsageError("--proxy-source needs --proxy v1 or v2")
        from check_smtp_verbs.proxy import parse_source

        try:
            proxy_source = parse_source(args.proxy_source)
        except ValueError as exc:
            raise UsageError(f"--proxy-source: {exc}") from None

    if args.mx is not None or args.resolver is not None:
        try:
            import dns.resolver  # noqa: F401  (only these options pay for it)
        except ImportError:
            raise UsageError(
                "--mx and --resolver need dnspython (pip install dnspython, "
                "or apt-get install python3-dnspython)"
            ) from None

    settings = Settings(
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
        **secure,  # type: ignore[arg-type]
        data=args.data,
        subject=args.subject,
        lmtp=args.lmtp,
        commands=commands,
        proxy=None if args.proxy is None else int(args.proxy[1]),
        proxy_source=proxy_source,
        mx=host if args.mx is not None else None,
        resolver=_resolver(args.resolver),
        json=args.json,
    )
    if args.quit_after is not None:
        settings = settings._replace(quit_after=_quit_after(args.quit_after, settings))
    return settings


def _quit_after(value: str, settings: Settings) -> str:
    from check_smtp_verbs.probe import planned_verbs

    verb = value.strip().lower()
    known = planned_verbs(settings)
    if verb not in known:
        raise UsageError(
            f"--quit-after {value!r}: this walk has no such step "
            f"(it can stop after: {', '.join(sorted(known))})"
        )
    return verb


def build_check(settings: Settings) -> nagiosplugin.Check:
    from check_smtp_verbs.contexts import CertificateContext, ReplyContext, time_contexts

    judges = [
        ReplyContext(settings.warning_codes, settings.timeout_state, settings.ignore_quit),
        *time_contexts(settings.timed, settings.time_warning, settings.time_critical),
        CertificateContext(settings.cert_days_warning, settings.cert_days_critical),
    ]
    if settings.mx is not None:
        from check_smtp_verbs.mx_check import DnsContext, MxSummary, MxVerbs

        mx_resource = MxVerbs(settings)
        return nagiosplugin.Check(
            mx_resource,
            *judges,
            DnsContext(),
            *time_contexts(("dns",), settings.time_warning, settings.time_critical),
            MxSummary(mx_resource, settings.verbosity),
        )
    from check_smtp_verbs.resource import SmtpVerbs
    from check_smtp_verbs.summary import VerbsSummary

    resource = SmtpVerbs(settings)
    return nagiosplugin.Check(resource, *judges, VerbsSummary(resource, settings.verbosity))


def usage_exit(message: str) -> NoReturn:
    print(f"SMTP_VERBS UNKNOWN - {message}")
    sys.exit(3)


@nagiosplugin.guarded(verbose=0)
def main(argv: list[str] | None = None) -> None:
    try:
        settings = settings_from(argv)
    except UsageError as exc:
        message = scrub_argv(str(exc), sys.argv[1:] if argv is None else argv)
        if "--json" in (sys.argv[1:] if argv is None else argv):
            from check_smtp_verbs import json_output

            json_output.usage_error(message)
        usage_exit(message)
    check = build_check(settings)
    if settings.json:
        from check_smtp_verbs import json_output

        json_output.main(check, settings)
    # A safety net only: the probe's own deadline ends the run first and names the verb.
    check.main(verbose=settings.verbosity, timeout=math.ceil(settings.timeout) + 2)
