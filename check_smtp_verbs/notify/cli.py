"""notify_sms_mail: options and macros to settings, then lock, decide, send, record.

Exit codes (Icinga and Nagios log stderr and the code of a notification command):

* 0 - the message was sent, or deliberately not sent (throttled, a type not in
  --types, a RECOVERY with no PROBLEM before it, an OK in standalone mode), or
  --dry-run;
* 1 - no server accepted the message (nothing was recorded, so the next
  notification tries again), or the state file stayed locked past the timeout;
* 3 - bad input or set-up: a missing or invalid option, CR/LF in a header value, an
  unknown type, a check command that cannot be started, a state file that cannot
  be written (the alert is still sent first, unthrottled: losing it would be worse).

Every error is one line on stderr; there is never a traceback.
"""

from __future__ import annotations

import argparse
import math
import os
import re
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from check_smtp_verbs import __version__, addresses, inputs
from check_smtp_verbs.addresses import InvalidInput
from check_smtp_verbs.extra_opts import add_extra_opts
from check_smtp_verbs.notify import macros, throttle
from check_smtp_verbs.notify.macros import Notification
from check_smtp_verbs.notify.settings import (
    MAX_LENGTH,
    SMS_GSM_LENGTH,
    Auth,
    Server,
    Settings,
    TlsPolicy,
)
from check_smtp_verbs.notify.throttle import KEY_MODES
from check_smtp_verbs.text import clean, escape
from check_smtp_verbs.usage import Parser, UsageError

if TYPE_CHECKING:  # delivery and message import smtplib/ssl/email: only when sending
    from email.message import EmailMessage

    from check_smtp_verbs.notify.delivery import Delivered

PROG = "notify_sms_mail"
TEST_CLOCK = "NOTIFY_SMS_MAIL_TEST_NOW"
"""Epoch seconds to use as "now" for the throttle. For the test suite only."""

EXIT_DONE, EXIT_FAILED, EXIT_BAD_INPUT = 0, 1, 3
_DIGITS = re.compile(r"[0-9]{1,6}")  # ASCII only: str.isdigit() also admits "²"
REPLY_TEXT = 200  # the most of a gateway's reply shown, escaped
FAILURE_TEXT = 2000  # the most of the reasons of every server tried, escaped


def build_parser() -> argparse.ArgumentParser:
    p = Parser(
        prog=PROG,
        usage=f"{PROG} --to ADDRESS --from ADDRESS [options] [-- CHECK_COMMAND ...]",
        description="Send a throttled, SMS-sized alert straight to an email-to-SMS gateway, "
        "bypassing the local mail relay. After --, run CHECK_COMMAND and alert on its result "
        "(standalone mode, for cron).",
    )
    a = p.add_argument
    a(
        "--to",
        metavar="ADDRESS",
        help="the phone's gateway address, e.g. 0419999999@sms.example.net",
    )
    a("--from", dest="sender", metavar="ADDRESS", help="envelope and header sender")
    a(
        "--smtp-server",
        action="append",
        default=[],
        metavar="HOST[:PORT]",
        help="gateway to deliver to, port 25 unless given; repeatable, tried in order "
        "(default: the MX hosts of the --to domain)",
    )
    a("--smtp-port", default="25", metavar="PORT", help="port for MX delivery (default: 25)")
    a(
        "--resolver",
        metavar="IP[:PORT]",
        help="DNS server for the MX look-up (default: the system's)",
    )
    a("--helo", metavar="NAME", help="name sent with EHLO (default: this host's name)")
    a(
        "--require-tls",
        action="store_true",
        help="refuse servers without STARTTLS and verify their certificate",
    )
    a("--no-tls", action="store_true", help="never use STARTTLS")
    a("--tls-ca", metavar="FILE", help="CA certificates to verify the gateway with")
    a("--auth-user", metavar="USER", help="SMTP AUTH user (needs TLS; implies --require-tls)")
    a("--auth-password-file", metavar="FILE", help="file whose first line is the AUTH password")
    a(
        "--auth-password-env",
        metavar="VARIABLE",
        help="environment variable holding the AUTH password",
    )
    a(
        "-t",
        "--timeout",
        default="15",
        metavar="SECONDS",
        help="deadline for the whole delivery, DNS included (default: 15)",
    )
    a(
        "--type",
        metavar="TYPE",
        help="notification type (PROBLEM, RECOVERY, ...); env NAGIOS_NOTIFICATIONTYPE",
    )
    a("--host", metavar="NAME", help="host name; env NAGIOS_HOSTNAME")
    a(
        "--service",
        metavar="NAME",
        help="service description; env NAGIOS_SERVICEDESC (absent: a host notification)",
    )
    a(
        "--state",
        metavar="STATE",
        help="CRITICAL, DOWN, ...; env NAGIOS_SERVICESTATE/NAGIOS_HOSTSTATE",
    )
    a("--output", metavar="TEXT", help="plugin output; env NAGIOS_SERVICEOUTPUT/NAGIOS_HOSTOUTPUT")
    a("--long-output", metavar="TEXT", help="long plugin output; env NAGIOS_LONGSERVICEOUTPUT/...")
    a(
        "--types",
        default="PROBLEM,RECOVERY",
        metavar="LIST",
        help="notification types to send: PROBLEM, RECOVERY, ACKNOWLEDGEMENT, FLAPPING, DOWNTIME, "
        "CUSTOM (default: PROBLEM,RECOVERY)",
    )
    a(
        "--max-length",
        metavar="CHARS",
        help="longest message body, for a gateway that joins several SMS (default: one SMS, "
        "160 GSM-7 characters, or 70 when the text needs others)",
    )
    a(
        "--throttle",
        default="1h",
        metavar="DURATION",
        help="at most one PROBLEM per key within this time: 90s, 30m, 1h, 1d; "
        "0 disables (default: 1h)",
    )
    a(
        "--throttle-key",
        default="service",
        choices=KEY_MODES,
        help="throttle per host+service (default), per host, or one global window",
    )
    a(
        "--no-escalation",
        action="store_true",
        help="throttle a worse PROBLEM (WARNING, then CRITICAL) like any other",
    )
    a(
        "--state-file",
        metavar="PATH",
        help="throttle state (default: $STATE_DIRECTORY/notify_sms_mail.json, else "
        "${XDG_STATE_HOME:-~/.local/state}/check_smtp_verbs/notify_sms_mail.json)",
    )
    a(
        "--check-timeout",
        default="60",
        metavar="SECONDS",
        help="standalone mode: the longest the check may run (default: 60)",
    )
    a(
        "--dry-run",
        action="store_true",
        help="print the message and the decision; send and record nothing",
    )
    add_extra_opts(p)
    a("-V", "--version", action="version", version=f"{PROG} {__version__}")
    return p


MAX_SECONDS = 86400.0
"""A day: no notification waits longer, and more overflows lock and socket timeouts."""


def _seconds(value: str, what: str, *, allow_zero: bool = False) -> float:
    try:
        seconds = float(value)
    except ValueError:
        seconds = math.nan
    if not math.isfinite(seconds) or seconds < 0 or (seconds == 0 and not allow_zero):
        raise UsageError(f"{what} must be a positive number of seconds, not {value!r}")
    if seconds > MAX_SECONDS:
        raise UsageError(f"{what} must be at most {MAX_SECONDS:.0f} seconds, not {value!r}")
    return seconds


def parse_duration(value: str) -> float:
    """``90s``, ``30m``, ``1h``, ``1d`` or plain seconds; ``0`` turns the throttle off."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*", value.lower())
    if not match:
        raise UsageError(f"--throttle wants a duration like 90s, 30m, 1h or 1d, not {value!r}")
    number, unit = match.groups()
    return float(number) * {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}[unit]


def _password(args: argparse.Namespace, environ: Mapping[str, str]) -> str | None:
    if args.auth_password_file and args.auth_password_env:
        raise UsageError("give --auth-password-file or --auth-password-env, not both")
    if args.auth_password_file:
        return inputs.secret_from_file(args.auth_password_file)
    if args.auth_password_env:
        return inputs.secret_from_env(args.auth_password_env, environ)
    return None


def settings_from(argv: list[str], environ: Mapping[str, str]) -> Settings:
    """Validate everything before anything is sent; UsageError with one line if bad."""
    from check_smtp_verbs import extra_opts

    argv = extra_opts.expand(argv, PROG, build_parser, environ)
    try:
        return _validate(argv, environ)
    except UsageError as exc:  # a secret from an --extra-opts file is in argv only now
        raise UsageError(inputs.scrub_argv(str(exc), argv)) from None


def _validate(argv: list[str], environ: Mapping[str, str]) -> Settings:
    if "--" in argv:
        split = argv.index("--")
        argv, command = argv[:split], argv[split + 1 :]
        if not command:
            raise UsageError("nothing after --: give the check command to run")
    else:
        command = []
    args = build_parser().parse_args(argv)
    try:
        if not args.to:
            raise UsageError("--to is required: the SMS gateway address of the phone")
        if not args.sender:
            raise UsageError("--from is required: the sender the gateway accepts")
        recipient = addresses.mailbox(args.to, "--to")
        sender = addresses.mailbox(args.sender, "--from")
        if "@" not in recipient:
            raise UsageError(f"--to needs a domain: {args.to!r}")
        servers = tuple(Server(*inputs.host_port(s, 25, "--smtp-server")) for s in args.smtp_server)
        resolver = None
        if args.resolver:
            address, port = inputs.ip_port(args.resolver, "--resolver", allow_zero=False)
            resolver = (address, 53 if port is None else port)
        helo = addresses.helo_name(args.helo) if args.helo is not None else inputs.default_helo()
        options = {
            "type": args.type,
            "host": args.host,
            "service": args.service,
            "state": args.state,
            "output": args.output,
            "long_output": args.long_output,
        }
        for name in ("type", "host", "service", "state"):
            if options[name] is not None:
                addresses.reject_control_characters(options[name], f"--{name}")
        types = macros.families(args.types)
    except InvalidInput as exc:
        raise UsageError(str(exc)) from None
    if args.require_tls and args.no_tls:
        raise UsageError("--require-tls and --no-tls contradict each other")
    password = _password(args, environ)
    if args.auth_user is not None:
        addresses.reject_control_characters(args.auth_user, "--auth-user")
        if password is None:
            raise UsageError("--auth-user needs --auth-password-file or --auth-password-env")
        if args.no_tls:
            raise UsageError("--auth-user needs TLS: the password is never sent in clear text")
    elif password is not None:
        raise UsageError("an AUTH password without --auth-user")
    auth = Auth(args.auth_user, password) if args.auth_user is not None and password else None
    tls = TlsPolicy(
        require=args.require_tls or auth is not None, disable=args.no_tls, cafile=args.tls_ca
    )
    if args.tls_ca is not None:
        inputs.ca_file(args.tls_ca, "--tls-ca")
    max_length_given = args.max_length is not None
    if not max_length_given:
        args.max_length = str(SMS_GSM_LENGTH)
    max_length = int(args.max_length) if _DIGITS.fullmatch(args.max_length) else 0
    if not 20 <= max_length <= MAX_LENGTH:
        raise UsageError(
            f"--max-length must be a number from 20 to {MAX_LENGTH}, not {args.max_length!r}"
        )
    from check_smtp_verbs.notify.throttle import default_path

    return Settings(
        recipient=recipient,
        sender=sender,
        servers=servers,
        mx_port=inputs.port(args.smtp_port, "--smtp-port"),
        resolver=resolver,
        helo=helo,
        tls=tls,
        auth=auth,
        timeout=_seconds(args.timeout, "--timeout"),
        max_length=max_length,
        throttle=parse_duration(args.throttle),
        throttle_key=args.throttle_key,
        state_file=Path(args.state_file) if args.state_file else default_path(),
        types=types,
        dry_run=args.dry_run,
        check_command=tuple(command),
        check_timeout=_seconds(args.check_timeout, "--check-timeout"),
        macro_options=options,
        escalation=not args.no_escalation,
        max_length_given=max_length_given,
    )


def now(environ: Mapping[str, str]) -> float:
    injected = environ.get(TEST_CLOCK)
    if injected:
        try:
            return float(injected)
        except ValueError:
            raise UsageError(f"{TEST_CLOCK} must be epoch seconds, not {injected!r}") from None
    return time.time()


def _say(line: str) -> None:
    """One line on stdout; escaped whole, whatever part of it came from outside."""
    print(f"{PROG}: {escape(line)}", flush=True)


def _complain(line: str) -> None:
    print(f"{PROG}: {escape(line)}", file=sys.stderr, flush=True)


def notification_for(
    settings: Settings, environ: Mapping[str, str]
) -> tuple[Notification, str | None]:
    """The notification, and in standalone mode the check's state to remember."""
    if not settings.check_command:
        try:
            return macros.from_options(settings.macro_options, environ), None
        except InvalidInput as exc:
            raise UsageError(str(exc)) from None
    from check_smtp_verbs.notify import standalone

    given = settings.macro_options
    clashing = [
        f"--{name.replace('_', '-')}"
        for name in ("type", "state", "output", "long_output")
        if given[name] is not None
    ]
    if clashing:
        raise UsageError(f"{', '.join(clashing)}: in standalone mode these come from the check")
    command = list(settings.check_command)
    result = standalone.run_check(command, settings.check_timeout)
    options = {
        "type": "RECOVERY" if result.state == "OK" else "PROBLEM",
        "host": given["host"] or standalone.default_host(command),
        "service": given["service"] or standalone.default_service(command),
        "state": result.state,
        "output": result.output,
        "long_output": "",
    }
    try:
        return macros.from_options(options, {}), result.state
    except InvalidInput as exc:
        raise UsageError(str(exc)) from None


def run(argv: list[str], environ: Mapping[str, str]) -> int:
    from check_smtp_verbs.notify import standalone

    try:
        settings = settings_from(argv, environ)
        now(environ)  # a bad test clock is bad input, refused before anything is locked
        notification, check_state = notification_for(settings, environ)
    except (UsageError, standalone.CannotRun) as exc:
        _complain(f"error: {inputs.scrub_argv(str(exc), argv)}")
        return EXIT_BAD_INPUT

    key = throttle.key_for(notification, settings.throttle_key)
    store = throttle.StateFile(settings.state_file)
    wait = _lock_wait(settings)
    try:
        # The key's lock is held until the outcome is recorded: a second run for this
        # key waits here for the first one's outcome (a few seconds: one delivery),
        # while runs for other keys go straight on.  The store lock is held only to
        # read and, in _record, to write.
        with store, store.key_locked(key, wait):
            with store.locked(wait):
                entries, problem = store.load()
                # The clock is read under the lock.  Read before it, a run that waited
                # while another one sent and recorded would find that record later
                # than its own "now", outside the window, and send a second message.
                moment = now(environ)
            return _locked_run(
                settings, notification, check_state, key, store, entries, problem, moment
            )
    except throttle.LockTimeout as exc:
        _complain(f"error: {exc}")
        return EXIT_FAILED
    except throttle.StoreError as exc:
        # Raised only before the decision (_locked_run reports its own): no usable
        # state directory or lock file.  Never lose the alert over it.  Send
        # unthrottled, then report the set-up problem with exit 3.
        _complain(f"{exc}; sending without the throttle")
        code = _locked_run(settings, notification, check_state, key, None, {}, "", now(environ))
        return code if code != EXIT_DONE or settings.dry_run else EXIT_BAD_INPUT


def _lock_wait(settings: Settings) -> float:
    """How long to wait for a lock: a holder of the key's lock delivers for at most
    --timeout seconds, then records in milliseconds; 5 s cover the rest."""
    return settings.timeout + 5


def _locked_run(
    settings: Settings,
    notification: Notification,
    check_state: str | None,
    key: str,
    store: throttle.StateFile | None,
    entries: dict[str, throttle.Entry],
    problem: str,
    moment: float,
) -> int:
    """Decide, send, record; with ``store`` the caller holds the key's lock."""
    if problem:
        _complain(problem)
    entry = entries.get(key, throttle.Entry())
    decision = throttle.decide(
        entry,
        notification,
        key,
        moment,
        settings.throttle,
        settings.types,
        settings.escalation,
    )
    if check_state is not None:
        entry = entry._replace(last_state=check_state)

    if settings.dry_run:
        verdict = "would send" if decision.send else "would not send"
        _say(f"dry run: {verdict} {notification.type} for {key}: {decision.reason}")
        sys.stdout.write(_message(settings, notification, decision.note, moment).as_string())
        return EXIT_DONE

    if decision.send:
        from check_smtp_verbs.notify import delivery

        built = _message(settings, notification, decision.note, moment)
        try:
            delivered = _deliver(settings, built)
        except delivery.DeliveryFailed as exc:
            _complain(
                f"not sent: no server accepted the {notification.type} for {key}: "
                f"{clean(str(exc), FAILURE_TEXT)}"
            )
            if store is not None and (problem or check_state is not None):
                # Nothing about the send is recorded; a corrupt file is still repaired
                # and the check's state still remembered.
                _record(settings, store, key, entry)
            return EXIT_FAILED
        entry = throttle.record_sent(entry, notification, moment)
        tls = ", TLS" if delivered.tls else ""
        _say(
            f"sent {notification.type} for {key} to {settings.recipient} via {delivered.server}"
            f"{tls} ({decision.reason}): {clean(delivered.reply, REPLY_TEXT)}"
        )
    else:
        entry = throttle.record_suppressed(entry, notification, moment)
        _say(f"not sent: {decision.reason}")
    if store is not None and not _record(settings, store, key, entry):
        return EXIT_BAD_INPUT
    return EXIT_DONE


def _message(
    settings: Settings, notification: Notification, note: str, moment: float
) -> EmailMessage:
    from check_smtp_verbs.notify import message

    return message.build(
        notification,
        settings.sender,
        settings.recipient,
        note,
        settings.max_length,
        moment,
        explicit=settings.max_length_given,
    )


def _record(settings: Settings, store: throttle.StateFile, key: str, entry: throttle.Entry) -> bool:
    """Write ``key``'s entry into the file as it is *now*: while this run was
    sending, runs for other keys recorded theirs, which must not be undone."""
    try:
        with store.locked(_lock_wait(settings)):
            entries, _ = store.load()  # unusable: already reported; the save repairs it
            store.save(entries | {key: entry})
    except throttle.StoreError as exc:
        _complain(str(exc))
        return False
    return True


def _deliver(settings: Settings, built: EmailMessage) -> Delivered:
    from check_smtp_verbs.core.deadline import Deadline
    from check_smtp_verbs.notify import delivery

    deadline = Deadline(settings.timeout)
    letter = delivery.Letter(
        built, settings.sender, settings.recipient, settings.helo, settings.tls, settings.auth
    )
    if settings.servers:
        return delivery.deliver_to_servers(list(settings.servers), letter, deadline)
    domain = settings.recipient.rpartition("@")[2]
    return delivery.deliver_to_mx(domain, settings.mx_port, settings.resolver, letter, deadline)


def main(argv: list[str] | None = None) -> int:
    """Console entry point; never lets a traceback reach Icinga's log."""
    try:
        return run(sys.argv[1:] if argv is None else argv, os.environ)
    except KeyboardInterrupt:
        _complain("interrupted")
        return EXIT_FAILED
    except Exception as exc:  # a bug: still one line, and a failure code
        _complain(f"internal error: {type(exc).__name__}: {exc}")
        return EXIT_FAILED
