"""The check's command line: parse, validate, then hand a Settings to the check.

The options themselves are declared in options.py, and files, secrets, ports and
HOST:PORT are read by inputs.py (shared with the notifier).  Every value is
validated here before anything is sent; a bad one ends the run with UNKNOWN (3) and
one line, never a traceback and never a half-sent conversation.
"""

from __future__ import annotations

import argparse
import math
import os
import re
import sys
from typing import TYPE_CHECKING, NamedTuple, NoReturn

import nagiosplugin

from check_smtp_verbs import addresses, inputs
from check_smtp_verbs.codes import CodeSet
from check_smtp_verbs.options import PROG, build_parser
from check_smtp_verbs.settings import (
    AUTH_MECHANISMS,
    DEFAULT_EXPECT,
    STATES,
    TIMED,
    Secret,
    Settings,
)
from check_smtp_verbs.usage import UsageError

if TYPE_CHECKING:  # -C/-R/--command-expect load their module only when given
    from check_smtp_verbs.commands import Command
    from check_smtp_verbs.roundtrip.url import MailboxURL

__all__ = ["PROG", "UsageError", "build_check", "build_parser", "main", "settings_from"]

MAX_TIMEOUT = 86400.0
"""One day.  No scheduler waits that long for a check, and beyond it the seconds
overflow what signal.alarm and socket timeouts take (``-t 3e9`` was an OverflowError)."""

scrub_argv = inputs.scrub_argv  # kept importable under its old name


def _pair(value: str, option: str, known: Keys) -> tuple[str, str]:
    """``KEY=VALUE`` where KEY is a verb or a step name such as rcpt_2."""
    key, sep, rest = value.partition("=")
    key = key.strip().lower()
    if not sep or not rest.strip():
        raise UsageError(f"{option} wants VERB=VALUE, not {value!r}")
    if not known.knows(key):
        raise UsageError(
            f"{option}: unknown verb {key!r} (known: {', '.join(known.verbs)}, "
            "or a step name such as rcpt_2)"
        )
    return key, rest.strip()


_STEP_NAME = re.compile(r"([a-z][a-z0-9-]*)_([0-9]{1,6})")


class Keys(NamedTuple):
    """What --expect, --warning-codes and --verb-* may name: a verb, or one step.

    A step is named in perfdata as its verb, then ``verb_2``, ``verb_3`` ... for the
    second and later ones (recipients, LMTP's dots, repeated -C verbs).  Naming one
    step lets an admin judge ``rcpt_2`` apart from the other recipients.
    """

    verbs: tuple[str, ...]
    most: dict[str, int]  # verb -> the highest step number this run can have

    def knows(self, key: str) -> bool:
        if key in self.verbs:
            return True
        match = _STEP_NAME.fullmatch(key)
        return bool(match) and 2 <= int(match.group(2)) <= self.most.get(match.group(1), 0)


def _keys(verbs: list[str], recipients: int, commands: tuple[Command, ...]) -> Keys:
    most = {"rcpt": max(recipients, 1), "dot": max(recipients, 1)}
    for command in commands:  # a -C verb that is also a built-in step is numbered on from it
        builtin = command.verb in DEFAULT_EXPECT or command.verb in TIMED
        most[command.verb] = most.get(command.verb, 1 if builtin else 0) + 1
    return Keys(tuple(verbs), most)


def _codes(value: str, option: str) -> CodeSet:
    try:
        return CodeSet.parse(value)
    except ValueError as exc:
        raise UsageError(f"{option}: {exc}") from None


def _range(value: str, option: str) -> nagiosplugin.Range:
    try:
        parsed = nagiosplugin.Range(value)
    except (ValueError, TypeError):
        raise UsageError(
            f"{option}: invalid range {value!r} "
            "(want seconds like 2, 0.5 or a Nagios range like 1:5)"
        ) from None
    if not value.strip():
        raise UsageError(f"{option}: invalid range {value!r}: it is empty")
    if parsed.invert and parsed.start <= 0 and parsed.end == math.inf:
        # "@" alone, "@0:", "@~:": every time is inside, so the service never leaves WARNING
        raise UsageError(
            f"{option}: invalid range {value!r}: every time is inside it, so it would always alert"
        )
    return parsed


def parse_timeout(value: str) -> tuple[float, nagiosplugin.state.ServiceState]:
    """``SECONDS[:STATE]`` as check_smtp takes it; STATE is a name or 0-3."""
    seconds, _, state = value.partition(":")
    try:
        timeout = float(seconds)
    except ValueError:
        raise UsageError(f"--timeout: {seconds!r} is not a number of seconds") from None
    if not math.isfinite(timeout) or timeout <= 0:
        raise UsageError(f"--timeout must be a positive number of seconds, not {seconds!r}")
    if timeout > MAX_TIMEOUT:
        raise UsageError(f"--timeout must be at most {MAX_TIMEOUT:.0f} seconds, not {seconds!r}")
    state = state.strip().lower()
    if not state:
        return timeout, nagiosplugin.Critical
    return timeout, _state(state, "--timeout")


def _state(text: str, option: str) -> nagiosplugin.state.ServiceState:
    by_number = {str(int(s)): s for s in STATES.values()}
    chosen = STATES.get(text.strip().lower()) or by_number.get(text.strip())
    if chosen is None:
        raise UsageError(
            f"{option}: unknown state {text!r} (ok, warning, critical, unknown or 0-3)"
        )
    return chosen


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
    """The AUTH secret from exactly one source, read by the bounded readers of inputs.py."""
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
    if args.auth_password_file is not None:
        return Secret(inputs.secret_from_file(args.auth_password_file))
    if args.auth_password_env is not None:
        return Secret(inputs.secret_from_env(args.auth_password_env, os.environ))
    if args.auth_password is not None:
        return Secret(inputs.secret_from_argv(args.auth_password))
    return None


class TlsOptions(NamedTuple):
    """The TLS part of Settings, validated together: nothing half-configured gets through."""

    starttls: str | None
    implicit_tls: bool
    sni: str | None
    ca_file: str | None
    insecure: bool
    cert_days_warning: float | None
    cert_days_critical: float | None
    tls_min_version: str | None
    tls_max_version: str | None
    forbid_tls_versions: tuple[str, ...]


class AuthOptions(NamedTuple):
    """The AUTH part of Settings: a mechanism always comes with a user and a secret."""

    auth_mech: str | None
    auth_user: str | None
    auth_secret: Secret | None
    allow_plaintext_auth: bool


class ProtectionOptions(NamedTuple):
    """--dane and --mta-sts: what the domain promises senders, checked as they check it."""

    dane: str | None
    mta_sts: str | None


def protection_options(args: argparse.Namespace) -> ProtectionOptions:
    """Validate --dane/--mta-sts; with --mx they imply STARTTLS on every MX host.

    Implied STARTTLS is "optional": whether a host without it fails is DANE's or
    MTA-STS's verdict (a host with TLSA records or under an enforced policy must offer
    it, others need not); -S makes it required as usual.  Runs before tls_options, so
    that --ca-file and --sni count as TLS options here.
    """
    if args.mta_sts is not None and args.mx is None:
        raise UsageError("--mta-sts needs --mx DOMAIN: a policy belongs to a mail domain")
    if args.dane is not None and args.mx is None and args.starttls is None and not args.tls:
        raise UsageError("--dane needs TLS: -S/--starttls, --tls or --mx DOMAIN")
    if args.dane is not None and args.hostname is not None and _is_address(args.hostname):
        raise UsageError("--dane needs a host name: TLSA records belong to names (RFC 7672)")
    if args.mta_sts is not None and args.insecure:
        raise UsageError("--mta-sts checks certificates as senders do: drop --insecure")
    if args.dane is not None and args.lmtp:
        raise UsageError("--dane is for SMTP servers (RFC 7672), not LMTP")
    asked = args.dane is not None or args.mta_sts is not None
    if asked and args.mx is not None and args.starttls is None and not args.tls:
        args.starttls = "optional"
    return ProtectionOptions(args.dane, args.mta_sts)


def _is_address(host: str) -> bool:
    import ipaddress

    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return True


def tls_options(args: argparse.Namespace) -> TlsOptions:
    if args.starttls is not None and args.tls:
        raise UsageError("use either -S/--starttls or --tls, not both")
    starttls = args.starttls
    if args.certificate_days is not None and starttls is None and not args.tls:
        starttls = "required"  # check_smtp's -D alone checks the STARTTLS certificate
    if args.starttls_required:
        if args.tls:
            raise UsageError(
                "--starttls-required tests the plaintext port before STARTTLS: not with --tls"
            )
        if starttls == "optional":
            raise UsageError("--starttls-required contradicts -S optional")
        starttls = "required"
    uses_tls = starttls is not None or args.tls
    # the mailbox of --imap/--pop3 is verified with --ca-file/--insecure too
    mailbox = args.imap is not None or args.pop3 is not None
    for option, given in (
        ("--sni", args.sni),
        ("--ca-file", None if mailbox else args.ca_file),
        ("--insecure", None if mailbox else (args.insecure or None)),
        ("--tls-min-version", args.tls_min_version),
        ("--tls-max-version", args.tls_max_version),
        ("--forbid-tls-version", args.forbid_tls_version or None),
    ):
        if given is not None and not uses_tls:
            raise UsageError(f"{option} needs -S/--starttls or --tls")
    if starttls is not None and args.helo_only:
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
        inputs.ca_file(args.ca_file)
    warn_days = crit_days = None
    if args.certificate_days is not None:
        warn_days, crit_days = _certificate_days(args.certificate_days)
    low, high = args.tls_min_version, args.tls_max_version
    if low is not None and high is not None and float(low) > float(high):
        raise UsageError(f"--tls-min-version {low} is above --tls-max-version {high}")
    forbidden: tuple[str, ...] = ()
    if args.forbid_tls_version:
        from check_smtp_verbs import refusals

        try:
            forbidden = refusals.parse_tls_versions(",".join(args.forbid_tls_version))
        except refusals.VersionError as exc:
            raise UsageError(f"--forbid-tls-version: {exc}") from None
        for version in forbidden:
            if low is not None and float(version) >= float(low):
                raise UsageError(
                    f"--forbid-tls-version {version} contradicts --tls-min-version {low}"
                )
    return TlsOptions(
        starttls=starttls,
        implicit_tls=args.tls,
        sni=sni,
        ca_file=args.ca_file,
        insecure=args.insecure,
        cert_days_warning=warn_days,
        cert_days_critical=crit_days,
        tls_min_version=args.tls_min_version,
        tls_max_version=args.tls_max_version,
        forbid_tls_versions=forbidden,
    )


def auth_options(args: argparse.Namespace, tls: TlsOptions) -> AuthOptions:
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
        uses_tls = tls.starttls is not None or tls.implicit_tls
        if not uses_tls and not args.allow_plaintext_auth:
            raise UsageError(
                "AUTH without TLS would send the secret in plaintext: "
                "add -S/--starttls or --tls (or --allow-plaintext-auth)"
            )
    return AuthOptions(
        auth_mech=mech,
        auth_user=args.auth_user,
        auth_secret=secret,
        allow_plaintext_auth=args.allow_plaintext_auth,
    )


class RefusalOptions(NamedTuple):
    """Every address, and what the server must refuse: validated together."""

    all_addresses: bool
    require_families: dict[int, nagiosplugin.state.ServiceState]
    relay_tests: tuple[str, ...]
    relay_tempfail_state: nagiosplugin.state.ServiceState
    no_plaintext_auth: nagiosplugin.state.ServiceState | None


def refusal_options(args: argparse.Namespace, tls: TlsOptions) -> RefusalOptions:
    import _socket as socket  # the constants only, as options.py: no socket module enums

    required: dict[int, nagiosplugin.state.ServiceState] = {}
    for option, value, family, other in (
        ("--require-ipv4", args.require_ipv4, socket.AF_INET, socket.AF_INET6),
        ("--require-ipv6", args.require_ipv6, socket.AF_INET6, socket.AF_INET),
    ):
        if value is None:
            continue
        if not args.all_addresses:
            raise UsageError(f"{option} needs --all-addresses")
        if args.family == other:
            raise UsageError(f"{option} contradicts -{4 if other == socket.AF_INET else 6}")
        required[family] = _state(value, option)
    try:
        relay_tests = tuple(addresses.mailbox(a, "--relay-test") for a in args.relay_tests)
    except addresses.InvalidInput as exc:
        raise UsageError(str(exc)) from None
    tempfail = nagiosplugin.Warn
    if args.relay_tempfail_state is not None:
        if not relay_tests:
            raise UsageError("--relay-tempfail-state needs --relay-test")
        tempfail = _state(args.relay_tempfail_state, "--relay-tempfail-state")
    plaintext = None
    if args.no_plaintext_auth is not None:
        if tls.implicit_tls:
            raise UsageError("--no-plaintext-auth: with --tls nothing is sent before TLS")
        if args.helo_only:
            raise UsageError("--no-plaintext-auth reads the EHLO reply: drop --helo-only")
        plaintext = _state(args.no_plaintext_auth, "--no-plaintext-auth")
    return RefusalOptions(
        all_addresses=args.all_addresses,
        require_families=required,
        relay_tests=relay_tests,
        relay_tempfail_state=tempfail,
        no_plaintext_auth=plaintext,
    )


class RoundTripOptions(NamedTuple):
    """The round trip's part of Settings: a mailbox comes with its user and password."""

    mailbox_url: MailboxURL | None = None
    mailbox_user: str | None = None
    mailbox_secret: Secret | None = None
    mailbox_folder: str = "INBOX"
    mailbox_starttls: str = "required"
    round_trip_state: str | None = None
    lost_after: float = 3600.0
    delivery_warning: nagiosplugin.Range | None = None
    delivery_critical: nagiosplugin.Range | None = None


_DURATION = re.compile(r"([0-9]+(?:\.[0-9]+)?)\s*([smhd]?)")
_UNIT_SECONDS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def _duration(value: str, option: str) -> float:
    """Seconds, or a number with s, m, h or d: ``--lost-after 1h``."""
    match = _DURATION.fullmatch(value.strip().lower())
    seconds = float(match.group(1)) * _UNIT_SECONDS[match.group(2)] if match else 0.0
    if not match or not 0 < seconds <= 30 * 86400:
        raise UsageError(
            f"{option} wants a duration like 3600, 90m or 1h (at most 30d), not {value!r}"
        )
    return seconds


def round_trip_options(args: argparse.Namespace) -> RoundTripOptions:
    """--imap or --pop3 with a user and a password from a file or the environment."""
    given = {
        protocol: [
            getattr(args, f"{protocol}{suffix}")
            for suffix in ("", "_user", "_password_file", "_password_env")
        ]
        for protocol in ("imap", "pop3")
    }
    given["imap"].append(args.imap_folder)
    used = [protocol for protocol, values in given.items() if any(v is not None for v in values)]
    if len(used) > 1:
        raise UsageError("use either the --imap or the --pop3 options, not both")
    if not used:
        for option, value in (
            ("--mailbox-starttls", args.mailbox_starttls),
            ("--delivery-warning", args.delivery_warning),
            ("--delivery-critical", args.delivery_critical),
            ("--round-trip-state", args.round_trip_state),
            ("--lost-after", args.lost_after),
        ):
            if value is not None:
                raise UsageError(f"{option} needs --imap or --pop3")
        return RoundTripOptions()
    protocol = used[0]
    text, user, password_file, password_env = given[protocol][:4]
    if text is None:
        raise UsageError(f"--{protocol}-* options need --{protocol} URL")
    from check_smtp_verbs.roundtrip.url import parse

    try:
        url = parse(text, protocol)
    except ValueError as exc:
        raise UsageError(f"--{protocol}: {exc}") from None
    if not user:
        raise UsageError(f"--{protocol} needs --{protocol}-user")
    if any(c in user for c in "\0\r\n"):
        raise UsageError(f"--{protocol}-user contains a control character")
    if password_file is not None and password_env is not None:
        raise UsageError(
            f"give the {protocol.upper()} password one way only, "
            f"not --{protocol}-password-file and --{protocol}-password-env"
        )
    if password_file is not None:
        secret = inputs.secret_from_file(password_file, f"--{protocol}-password-file")
    elif password_env is not None:
        secret = inputs.secret_from_env(password_env, os.environ, f"--{protocol}-password-env")
    else:
        raise UsageError(
            f"--{protocol} needs the password: --{protocol}-password-file or "
            f"--{protocol}-password-env (never on the command line)"
        )
    folder = "INBOX" if args.imap_folder is None else args.imap_folder
    if not folder.strip() or any(ord(c) < 0x20 or ord(c) == 0x7F for c in folder):
        raise UsageError("--imap-folder is empty or contains a control character")
    if args.lost_after is not None and args.round_trip_state is None:
        raise UsageError("--lost-after needs --round-trip-state")
    return RoundTripOptions(
        mailbox_url=url,
        mailbox_user=user,
        mailbox_secret=Secret(secret),
        mailbox_folder=folder,
        mailbox_starttls=args.mailbox_starttls or "required",
        round_trip_state=args.round_trip_state,
        lost_after=3600.0
        if args.lost_after is None
        else _duration(args.lost_after, "--lost-after"),
        delivery_warning=None
        if args.delivery_warning is None
        else _range(args.delivery_warning, "--delivery-warning"),
        delivery_critical=None
        if args.delivery_critical is None
        else _range(args.delivery_critical, "--delivery-critical"),
    )


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
    address, port = inputs.ip_port(value, "--resolver", allow_zero=False)
    return address, 53 if port is None else port


_CODE_LIKE = re.compile(r"(?=.*[0-9])[0-9xX,\s]+")  # "250,", "2 5 0" are typos, not text


def _expect(values: list[str], keys: Keys) -> tuple[dict[str, CodeSet], str | None]:
    """--expect: ``KEY=CODES``, bare CODES for the banner, or check_smtp's bare STRING.

    check_smtp's ``-e`` is a string the banner must contain (``-e ESMTP``); ours is a
    code pattern.  A bare value made of digits, x and commas is a pattern (and an
    error when malformed, quoting it as typed); anything else is check_smtp's string.
    """
    expect: dict[str, CodeSet] = {}
    banner_text = None
    for value in values:
        if "=" in value:
            key, codes = _pair(value, "--expect", keys)
        elif _CODE_LIKE.fullmatch(value.strip()):
            key, codes = "banner", value
        else:
            banner_text = value
            continue
        try:
            expect[key] = CodeSet.parse(codes)
        except ValueError as exc:
            raise UsageError(f"--expect {value!r}: {exc}") from None
    if banner_text is not None:
        try:
            addresses.reject_control_characters(banner_text, "--expect")
        except addresses.InvalidInput as exc:
            raise UsageError(str(exc)) from None
        if not banner_text.strip():
            raise UsageError("--expect: the text the banner must contain is empty")
    return expect, banner_text


def settings_from(argv: list[str] | None = None) -> Settings:
    """Parse and validate the command line; raise UsageError with one line on bad input."""
    from check_smtp_verbs import extra_opts

    argv = extra_opts.expand(list(sys.argv[1:] if argv is None else argv), PROG, build_parser)
    try:
        return _validate(build_parser().parse_args(argv))
    except UsageError as exc:  # a secret from an --extra-opts file is in argv only now
        raise UsageError(inputs.scrub_argv(str(exc), argv)) from None


def _validate(args: argparse.Namespace) -> Settings:
    if args.hostname is None and args.mx is None:
        raise UsageError("the following arguments are required: -H/--hostname (or --mx DOMAIN)")
    try:
        if args.mx is not None:
            host = addresses.domain(args.mx, "--mx")
        else:
            host = addresses.hostname(args.hostname)
        commands = _commands(args)
        addresses.reject_control_characters(args.subject, "--subject")
        helo = addresses.helo_name(args.helo) if args.helo is not None else inputs.default_helo()
        sender = (
            None
            if args.sender is None
            else addresses.mailbox(args.sender, "--from", allow_null=True)
        )
        recipients = tuple(addresses.mailbox(r, "--rcpt") for r in args.recipients)
    except addresses.InvalidInput as exc:
        raise UsageError(str(exc)) from None
    protection = protection_options(args)
    tls = tls_options(args)
    auth = auth_options(args, tls)
    refusal = refusal_options(args, tls)
    default_port = 465 if args.tls else 25
    port = default_port if args.port is None else inputs.port(args.port, "--port")
    timeout, timeout_state = parse_timeout(args.timeout)

    verbs = list(dict.fromkeys([*DEFAULT_EXPECT, *(c.verb for c in commands)]))
    timed = list(dict.fromkeys([*TIMED, *(c.verb for c in commands)]))
    if args.mx is not None:
        timed.append("dns")  # the MX look-up
    verb_keys = _keys(verbs, len(recipients), commands)
    time_keys = _keys(timed, len(recipients), commands)
    for keys in (verb_keys, time_keys):  # --relay-test's steps: relay, relay_2, ...
        keys.most["relay"] = len(refusal.relay_tests)
    expect, banner_text = _expect(args.expect, verb_keys)
    banner_text_state = nagiosplugin.Warn
    if args.expect_state is not None:
        if banner_text is None:
            raise UsageError("--expect-state needs a bare -e TEXT the banner must contain")
        banner_text_state = _state(args.expect_state, "--expect-state")
    warning_codes: dict[str, CodeSet] = {}
    for value in args.warning_codes:
        key, codes = _pair(value, "--warning-codes", verb_keys) if "=" in value else ("*", value)
        codes_set = _codes(codes, "--warning-codes")
        warning_codes[key] = warning_codes[key] | codes_set if key in warning_codes else codes_set
    time_warning = {
        k: _range(r, "--verb-warning")
        for k, r in (_pair(x, "--verb-warning", time_keys) for x in args.verb_warning)
    }
    time_critical = {
        k: _range(r, "--verb-critical")
        for k, r in (_pair(x, "--verb-critical", time_keys) for x in args.verb_critical)
    }
    if args.warning is not None:
        time_warning["total"] = _range(args.warning, "--warning")
    if args.critical is not None:
        time_critical["total"] = _range(args.critical, "--critical")

    round_trip = round_trip_options(args)
    data = args.data
    if round_trip.mailbox_url is not None:
        option = f"--{round_trip.mailbox_url.protocol}"
        if args.mx is not None:
            raise UsageError(f"{option} needs -H: the round trip follows one server, not --mx")
        if args.all_addresses:
            raise UsageError(
                f"{option} follows one probe through one server: not with --all-addresses"
            )
        if not recipients:
            raise UsageError(f"{option} needs --rcpt: the mailbox's address, to send the probe to")
        if args.quit_after is not None and args.quit_after.strip().lower() not in ("dot", "quit"):
            raise UsageError(f"{option} needs the probe sent: drop --quit-after {args.quit_after}")
        data = True  # the round trip is the fate of the --data probe
        if round_trip.delivery_warning is not None:
            time_warning["delivery"] = round_trip.delivery_warning
        if round_trip.delivery_critical is not None:
            time_critical["delivery"] = round_trip.delivery_critical
    if args.lmtp and args.helo_only:
        raise UsageError("--lmtp and --helo-only exclude each other: LMTP has only LHLO")
    if data and not recipients:
        raise UsageError("--data needs at least one --rcpt")
    proxy_source = None
    if args.proxy_source is not None:
        if args.proxy is None:
            raise UsageError("--proxy-source needs --proxy v1 or v2")
        proxy_source = inputs.ip_port(args.proxy_source, "--proxy-source")

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
        banner_text=banner_text,
        banner_text_state=banner_text_state,
        warning_codes=warning_codes,
        time_warning=time_warning,
        time_critical=time_critical,
        ignore_quit=args.ignore_quit_failure,
        verbosity=3 if args.transcript else min(args.verbose, 3),
        starttls=tls.starttls,
        implicit_tls=tls.implicit_tls,
        sni=tls.sni,
        ca_file=tls.ca_file,
        insecure=tls.insecure,
        cert_days_warning=tls.cert_days_warning,
        cert_days_critical=tls.cert_days_critical,
        tls_min_version=tls.tls_min_version,
        auth_mech=auth.auth_mech,
        auth_user=auth.auth_user,
        auth_secret=auth.auth_secret,
        allow_plaintext_auth=auth.allow_plaintext_auth,
        data=data,
        subject=args.subject,
        lmtp=args.lmtp,
        commands=commands,
        proxy=None if args.proxy is None else int(args.proxy[1]),
        proxy_source=proxy_source,
        mx=host if args.mx is not None else None,
        resolver=_resolver(args.resolver),
        json=args.json,
        mailbox_url=round_trip.mailbox_url,
        mailbox_user=round_trip.mailbox_user,
        mailbox_secret=round_trip.mailbox_secret,
        mailbox_folder=round_trip.mailbox_folder,
        mailbox_starttls=round_trip.mailbox_starttls,
        round_trip_state=round_trip.round_trip_state,
        lost_after=round_trip.lost_after,
        dane=protection.dane,
        mta_sts=protection.mta_sts,
        all_addresses=refusal.all_addresses,
        require_families=refusal.require_families,
        relay_tests=refusal.relay_tests,
        relay_tempfail_state=refusal.relay_tempfail_state,
        no_plaintext_auth=refusal.no_plaintext_auth,
        starttls_required=args.starttls_required,
        tls_max_version=tls.tls_max_version,
        forbid_tls_versions=tls.forbid_tls_versions,
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
        ReplyContext(
            settings.warning_codes,
            settings.timeout_state,
            settings.ignore_quit,
            settings.banner_text,
            settings.banner_text_state,
        ),
        *time_contexts(
            settings.timed + settings.step_timed, settings.time_warning, settings.time_critical
        ),
        CertificateContext(settings.cert_days_warning, settings.cert_days_critical),
        *_refusal_contexts(settings),
    ]
    if settings.dane is not None or settings.mta_sts is not None:
        from check_smtp_verbs.contexts import PlainContext, VerdictContext

        judges += [
            VerdictContext("dane"),
            VerdictContext("mta_sts"),
            VerdictContext("tlsrpt"),
            PlainContext("mta_sts_days"),
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
    if settings.mailbox_url is not None:
        from check_smtp_verbs.roundtrip.judge import MailboxContext

        judges += [
            MailboxContext(settings.lost_after, settings.timeout_state),
            *time_contexts(("delivery",), settings.time_warning, settings.time_critical),
            nagiosplugin.ScalarContext("probes"),  # pending and lost: perfdata, judged above
        ]
    from check_smtp_verbs.resource import AddressVerbs, SmtpVerbs
    from check_smtp_verbs.summary import VerbsSummary

    resource = AddressVerbs(settings) if settings.all_addresses else SmtpVerbs(settings)
    return nagiosplugin.Check(resource, *judges, VerbsSummary(resource, settings.verbosity))


def _refusal_contexts(settings: Settings) -> list[nagiosplugin.Context]:
    """The judges of --all-addresses and of the must-refuse checks, loaded only when asked."""
    found: list[nagiosplugin.Context] = []
    if settings.all_addresses:
        from check_smtp_verbs.families import AddressesContext

        found.append(AddressesContext(settings.require_families))
    if (
        settings.relay_tests
        or settings.starttls_required
        or settings.no_plaintext_auth is not None
        or settings.forbid_tls_versions
    ):
        from check_smtp_verbs import refusals

        found += refusals.contexts(settings)
    return found


def usage_exit(message: str) -> NoReturn:
    print(f"SMTP_VERBS UNKNOWN - {message}")
    sys.exit(3)


@nagiosplugin.guarded(verbose=0)
def main(argv: list[str] | None = None) -> None:
    try:
        settings = settings_from(argv)
    except UsageError as exc:
        message = inputs.scrub_argv(str(exc), sys.argv[1:] if argv is None else argv)
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
