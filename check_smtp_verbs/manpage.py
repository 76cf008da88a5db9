"""Man pages made from the programs' own argparse parsers.

Admins read ``man check_smtp``; a hand-kept manual would drift from the options
the moment one is added.  So the OPTIONS section and the synopsis are rendered
from the parser at build time, and only the prose around them (what the program
is for, its exit codes, examples, files and environment) is written here.

Run at package build time, never by the plugins themselves::

    python3 -m check_smtp_verbs.manpage check_smtp_verbs > check_smtp_verbs.1
    python3 -m check_smtp_verbs.manpage --directory DIR   # both pages into DIR

``SOURCE_DATE_EPOCH`` (set by dpkg-buildpackage from debian/changelog) fixes the
date in the page, so that two builds of one version give the same bytes.
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import NamedTuple

from check_smtp_verbs import __version__

DOCS = "/usr/share/doc/check-smtp-verbs"


class Page(NamedTuple):
    """The prose of one manual page; the options come from ``parser()``."""

    parser: Callable[[], argparse.ArgumentParser]
    summary: str  # NAME: "program \\- summary"
    description: Sequence[str]  # paragraphs after the parser's own description
    exit_status: Sequence[tuple[str, str]]
    examples: Sequence[tuple[str, str]]  # (what it does, command line)
    files: Sequence[tuple[str, str]]
    environment: Sequence[tuple[str, str]]
    see_also: Sequence[str]


def _check_parser() -> argparse.ArgumentParser:
    from check_smtp_verbs import cli

    return cli.build_parser()


def _notify_parser() -> argparse.ArgumentParser:
    from check_smtp_verbs.notify import cli

    return cli.build_parser()


def _notify_environment() -> list[tuple[str, str]]:
    """The NAGIOS_* fallbacks, read from the table the notifier itself uses."""
    from check_smtp_verbs.notify import cli, macros

    rows = []
    for field, service_variable in macros.SERVICE_ENV.items():
        host_variable = macros.HOST_ENV[field]
        option = "--" + field.replace("_", "-")
        if host_variable and host_variable != service_variable:
            names = f"{service_variable}, {host_variable}"
            text = f"{option} when it is not given (service, host notification)."
        else:
            names = service_variable
            text = f"{option} when it is not given."
        rows.append((names, text))
    rows += [
        (
            "STATE_DIRECTORY, XDG_STATE_HOME",
            "where the default state file lives (see FILES).",
        ),
        (
            cli.TEST_CLOCK,
            "replaces the clock of the throttle, in epoch seconds; for the test suite only, "
            "never set it in production.",
        ),
    ]
    return rows


PAGES: dict[str, Page] = {
    "check_smtp_verbs": Page(
        parser=_check_parser,
        summary="Nagios/Icinga plugin that walks the SMTP conversation verb by verb",
        description=(
            "The walk is connect, [PROXY header], [TLS], banner, EHLO (HELO on 500/502; LHLO "
            "with -L), [STARTTLS, TLS, EHLO], [AUTH], MAIL FROM, [-C commands], RCPT TO ..., "
            "[DATA, message, .], QUIT. Without --from and --rcpt it is banner, EHLO, QUIT, as "
            "check_smtp's. The walk stops at the first unexpected reply and still sends QUIT "
            "when the server can hear it.",
            "Every reply is read as soon as its last line arrives and validated; every step is "
            "timed on a monotonic clock and reported as perfdata in seconds. One deadline "
            "(--timeout) bounds the whole run, name look-ups included.",
            "The status line names the verb, the code, the expected codes and the server's text "
            "of the first problem. -v adds one line per verb; -vvv or --transcript the whole "
            "conversation, with secrets redacted.",
            f"Documentation with real output: {DOCS}/",
        ),
        exit_status=(
            ("0", "OK: every verb answered as expected, within the thresholds."),
            (
                "1",
                "WARNING: a code listed in --warning-codes, a time over -w, a certificate "
                "about to expire, or a bad QUIT reply.",
            ),
            (
                "2",
                "CRITICAL: an unexpected reply, a refused or failed TLS handshake or "
                "certificate, a closed connection, a timeout (see -t), a time over -c.",
            ),
            (
                "3",
                "UNKNOWN: bad options, an unreadable password file, or a DNS failure that "
                "leaves the answer unknown; one line, never a traceback.",
            ),
        ),
        examples=(
            (
                "Check that the server accepts mail for postmaster:",
                "check_smtp_verbs -H mx.example.net -f probe@example.net "
                "--rcpt postmaster@example.net",
            ),
            (
                "Submission with STARTTLS, certificate thresholds and AUTH, the password in a "
                "file only the monitoring user can read:",
                "check_smtp_verbs -H mail.example.net -p 587 -S -D 30,14 -A PLAIN "
                "-U monitoring@example.net --auth-password-file /etc/nagios/smtp-password",
            ),
            (
                "Every MX host of a domain at once:",
                "check_smtp_verbs --mx example.net -f probe@example.net "
                "--rcpt postmaster@example.net",
            ),
            (
                "What check_smtp -C/-R did, a transient failure at RCPT only a warning:",
                "check_smtp_verbs -H mx.example.net -f probe@example.net "
                "-C 'RCPT TO:<postmaster@example.net>' -R '^250' --warning-codes 4xx",
            ),
        ),
        files=(
            (
                "/usr/share/icinga2/include/plugins-contrib.d/smtp_verbs.conf",
                'The Icinga 2 CheckCommand "smtp_verbs" and the notification commands, '
                "loaded by include <plugins-contrib> (Debian package).",
            ),
            (
                "/etc/nagios-plugins/config/smtp_verbs.cfg",
                "The Nagios command definitions (Debian package).",
            ),
            (
                f"{DOCS}/examples/",
                "Example Icinga 2, Nagios, cron and systemd configurations.",
            ),
        ),
        environment=(
            (
                "the variable named by --auth-password-env",
                "holds the AUTH secret, so that it is on no command line.",
            ),
        ),
        see_also=("notify_sms_mail(1)", "check_smtp(1)", "swaks(1)"),
    ),
    "notify_sms_mail": Page(
        parser=_notify_parser,
        summary="send a throttled, SMS-sized alert straight to an email-to-SMS gateway",
        description=(
            "When the mail gateway is what is broken, an alert that travels through it never "
            "arrives. notify_sms_mail mails the alert to the carrier's email-to-SMS gateway "
            "(--smtp-server) or to the MX hosts of the --to domain, never through the local "
            "relay, and throttles it: at most one PROBLEM per key (--throttle-key) within "
            "--throttle, and the next message says how many were dropped.",
            "It is a Nagios or Icinga 2 notification command: the notification's type, host, "
            "service, state and output come from options, or from Nagios's NAGIOS_* "
            "environment macros. With a command after --, it runs that check itself (for cron "
            "or a systemd timer) and turns a non-OK result into a PROBLEM and a later OK into "
            "a RECOVERY.",
            f"Documentation: {DOCS}/",
        ),
        exit_status=(
            (
                "0",
                "Sent; or deliberately not sent (throttled, a type not in --types, a "
                "RECOVERY without a PROBLEM before it, OK in standalone mode); or --dry-run.",
            ),
            (
                "1",
                "Not sent: no server accepted the message (one line on stderr with each "
                "server's reason), or the state file stayed locked too long.",
            ),
            (
                "3",
                "Bad input or set-up, one line on stderr: a missing or invalid option, a "
                "control character in a header value, a check command that cannot be run, or a "
                "state file that cannot be written (the alert was still sent).",
            ),
        ),
        examples=(
            (
                "A service notification through the carrier's gateway:",
                "notify_sms_mail --to 0419999999@sms.example.net --from "
                "monitoring@example.net --smtp-server sms.example.net --type PROBLEM "
                "--host mx1 --service smtp-verbs --state CRITICAL --output 'RCPT answered 451'",
            ),
            (
                "Standalone, from cron: check the gateway and text on a change:",
                "notify_sms_mail --to 0419999999@sms.example.net --from "
                "monitoring@example.net -- /usr/lib/nagios/plugins/check_smtp_verbs "
                "-H mx.example.net -f probe@example.net --rcpt postmaster@example.net",
            ),
        ),
        files=(
            (
                "$STATE_DIRECTORY/notify_sms_mail.json, else "
                "${XDG_STATE_HOME:-~/.local/state}/check_smtp_verbs/notify_sms_mail.json",
                "The throttle state (--state-file), and beside it its .lock file. The "
                "directory is created with mode 0700.",
            ),
            (
                f"{DOCS}/examples/",
                "Example Icinga 2, Nagios, cron and systemd configurations.",
            ),
        ),
        environment=(
            (
                "the variable named by --auth-password-env",
                "holds the AUTH password, so that it is on no command line.",
            ),
        ),
        see_also=("check_smtp_verbs(1)",),
    ),
}


def _extra_opts_entries(
    parser: argparse.ArgumentParser,
) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """FILES and ENVIRONMENT entries of ``--extra-opts``, for a parser that has it.

    The ini search path is read from the module that searches it, so the page
    cannot name other places than the program looks in.
    """
    if "--extra-opts" not in parser._option_string_actions:
        return [], []
    try:
        from check_smtp_verbs import extra_opts

        defaults = tuple(getattr(extra_opts, "DEFAULT_FILES", ()))
    except ImportError:
        defaults = ()
    where = f": the first that exists of {', '.join(defaults)}" if defaults else ""
    files = [
        (
            "monitoring-plugins.ini, plugins.ini",
            "Options for --extra-opts, in a section named after the program unless "
            f"--extra-opts names another; without @FILE, the standard places{where}, "
            "as the monitoring-plugins read them.",
        )
    ]
    environment = [
        ("MP_CONFIG_FILE", "the ini file --extra-opts reads when it names none."),
        (
            "NAGIOS_CONFIG_PATH",
            "directories (separated by colons) where --extra-opts looks for "
            "monitoring-plugins.ini, plugins.ini or nagios-plugins.ini.",
        ),
    ]
    return files, environment


# --- roff -----------------------------------------------------------------


def roff(text: str) -> str:
    """Text as roff: backslashes and hyphens escaped, no line read as a request."""
    text = text.replace("\\", "\\e").replace("-", "\\-")
    return re.sub(r"^([.'])", r"\\&\1", text, flags=re.MULTILINE)


def _option_heading(action: argparse.Action, formatter: argparse.HelpFormatter) -> str:
    spellings = ", ".join(f"\\fB{roff(spelling)}\\fR" for spelling in action.option_strings)
    if action.nargs == 0:
        return spellings
    metavar = formatter._format_args(action, action.dest.upper())
    return f"{spellings} \\fI{roff(metavar)}\\fR"


def _usage(parser: argparse.ArgumentParser) -> str:
    """argparse's usage on one line (roff fills it), without the leading ``usage:``."""
    formatter = argparse.HelpFormatter(parser.prog, width=100_000)
    formatter.add_usage(parser.usage, parser._actions, parser._mutually_exclusive_groups, "")
    return formatter.format_help().strip()


def render(program: str, when: float | None = None) -> str:
    """The whole man page of ``program``, in roff."""
    page = PAGES[program]
    parser = page.parser()
    formatter = argparse.HelpFormatter(parser.prog)
    date = time.strftime("%Y-%m-%d", time.gmtime(_source_date() if when is None else when))
    out = [
        f'.TH {program.upper()} 1 "{date}" "check_smtp_verbs {__version__}" "Monitoring plugins"',
        ".SH NAME",
        f"{roff(program)} \\- {roff(page.summary)}",
        ".SH SYNOPSIS",
        ".nh",
        ".ad l",
    ]
    usage = _usage(parser)
    out += [f"\\fB{roff(program)}\\fR {roff(usage[len(program) :].strip())}", ".ad", ".hy"]
    out += [".SH DESCRIPTION", roff(parser.description or "")]
    for paragraph in page.description:
        out += [".PP", roff(paragraph)]
    out.append(".SH OPTIONS")
    for group in parser._action_groups:
        actions = [
            action
            for action in group._group_actions
            if action.option_strings and action.help != argparse.SUPPRESS
        ]
        if not actions:
            continue
        if group.title not in ("options", "optional arguments"):
            out.append(f".SS {roff(group.title or '')}")
        for action in actions:
            help_text = formatter._expand_help(action) if action.help else ""
            out += [".TP", _option_heading(action, formatter), roff(help_text)]
    if parser.epilog:
        out += [".PP", roff(parser.epilog)]
    out.append(".SH EXIT STATUS")
    for code, meaning in page.exit_status:
        out += [".TP", f"\\fB{code}\\fR", roff(meaning)]
    out.append(".SH EXAMPLES")
    for what, command in page.examples:
        out += [".PP", roff(what), ".PP", ".RS", ".nf", roff(_wrap(command)), ".fi", ".RE"]
    extra_files, extra_environment = _extra_opts_entries(parser)
    out.append(".SH FILES")
    for path, meaning in [*page.files, *extra_files]:
        out += [".TP", f"\\fI{roff(path)}\\fR", roff(meaning)]
    out.append(".SH ENVIRONMENT")
    environment = [*page.environment, *extra_environment]
    if program == "notify_sms_mail":
        environment = _notify_environment() + environment
    for name, meaning in environment:
        out += [".TP", f"\\fB{roff(name)}\\fR", roff(meaning)]
    out += [".SH SEE ALSO", ", ".join(_reference(name) for name in page.see_also)]
    return "\n".join(out) + "\n"


def _wrap(command: str, width: int = 72) -> str:
    """A long example as shell lines continued with a backslash, as a reader would type it."""
    words = [shlex.quote(word) for word in shlex.split(command)]
    pieces: list[str] = []  # an option and its value stay on one line
    for word in words:
        if pieces and pieces[-1].startswith("-") and " " not in pieces[-1] and word[0] != "-":
            pieces[-1] += " " + word
        else:
            pieces.append(word)
    lines = [""]
    for word in pieces:
        if lines[-1] and len(lines[-1]) + 1 + len(word) > width:
            lines.append("    ")
        lines[-1] += word if lines[-1].strip() == "" else " " + word
    return " \\\n".join(lines)


def _reference(name: str) -> str:
    program, section = name.rstrip(")").split("(")
    return f"\\fB{roff(program)}\\fR({section})"


def _source_date() -> float:
    epoch = os.environ.get("SOURCE_DATE_EPOCH", "")
    return float(epoch) if epoch.isdigit() else time.time()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python3 -m check_smtp_verbs.manpage",
        description="Write the man page of a program of check_smtp_verbs, made from its parser.",
    )
    parser.add_argument("program", nargs="?", choices=sorted(PAGES))
    parser.add_argument("--directory", type=Path, help="write PROGRAM.1 for every program here")
    args = parser.parse_args(argv)
    if args.directory:
        args.directory.mkdir(parents=True, exist_ok=True)
        for program in sorted(PAGES):
            (args.directory / f"{program}.1").write_text(render(program), encoding="utf-8")
        return 0
    if not args.program:
        parser.error("name a program, or give --directory")
    sys.stdout.write(render(args.program))
    return 0


if __name__ == "__main__":
    sys.exit(main())
