"""The check's options: names, help and defaults, and nothing else.

Option names follow the stock check_smtp (``-H -p -f -F -e -w -c -t -q -4 -6``) so a
service can switch over by changing the command name; the values are validated in
cli.py.  Kept apart so that the man-page generator and the docs coverage test read the
options without the validation around them.
"""

from __future__ import annotations

import _socket  # the constants only, without the socket module's enums
import argparse

from check_smtp_verbs import __version__
from check_smtp_verbs.extra_opts import add_extra_opts
from check_smtp_verbs.settings import (
    AUTH_MECHANISMS,
    DEFAULT_EXPECT,
    PROTECTION_MODES,
    STARTTLS_MODES,
    TIMED,
    TLS_VERSIONS,
)
from check_smtp_verbs.usage import Parser

PROG = "check_smtp_verbs"


def build_parser() -> argparse.ArgumentParser:
    p = Parser(
        prog=PROG,
        description="Walk an SMTP conversation verb by verb (banner, EHLO, MAIL, RCPT, QUIT), "
        "time every verb and judge every reply code.",
        epilog="Verbs for --expect/--warning-codes: "
        + ", ".join(DEFAULT_EXPECT)
        + ". Time labels for --verb-warning/--verb-critical: "
        + ", ".join(TIMED)
        + ". Both also take the verb of each -C command and any step name of the perfdata "
        "(rcpt_2, dot_2, noop_2), whose key wins over its verb's; --verb-warning takes dns "
        "with --mx.",
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
        const=_socket.AF_INET,
        default=0,
        help="connect over IPv4 only",
    )
    family.add_argument(
        "-6",
        "--use-ipv6",
        dest="family",
        action="store_const",
        const=_socket.AF_INET6,
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
        help="codes that VERB (or one step, e.g. rcpt_2) must answer, e.g. rcpt=250, "
        "helo=220,250 or mail=2xx; a bare CODES applies to the banner, and a bare text "
        "that is not a code pattern must appear in the banner, as check_smtp's -e STRING",
    )
    a(
        "--expect-state",
        metavar="STATE",
        help="state when the banner lacks a bare -e TEXT (default: warning, as check_smtp)",
    )
    a(
        "--warning-codes",
        action="append",
        default=[],
        metavar="[VERB=]CODES",
        help="unexpected codes that are only WARNING, e.g. 4xx, rcpt=450,451 or rcpt_2=4xx",
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
    add_extra_opts(p)
    a("-V", "--version", action="version", version=f"{PROG} {__version__}")
    _add_tls_options(p)
    _add_auth_options(p)
    _add_round_trip_options(p)
    _add_dane_options(p)
    _add_refusal_options(p)
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
    g(
        "--tls-max-version",
        choices=TLS_VERSIONS,
        help="offer no TLS version above this one (does the server still speak 1.2?)",
    )
    g(
        "--forbid-tls-version",
        action="append",
        default=[],
        metavar="VERSIONS",
        help="e.g. 1.0,1.1: a second connection offers only each of these versions, and the "
        "server accepting one is CRITICAL; repeatable",
    )


def _add_dane_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group(
        "DANE and MTA-STS", "(see docs/dane-mta-sts.md; --resolver should be a validating resolver)"
    ).add_argument
    g(
        "--dane",
        nargs="?",
        const="yes",
        choices=PROTECTION_MODES,
        help="match the certificate against the host's DNSSEC-signed TLSA records (RFC 7672); "
        "'required': no TLSA records is CRITICAL (needs -S, --tls or --mx)",
    )
    g(
        "--mta-sts",
        nargs="?",
        const="yes",
        choices=PROTECTION_MODES,
        help="check the domain's MTA-STS policy against its MX hosts (RFC 8461); 'required': "
        "no policy is CRITICAL (needs --mx; --ca-file also applies to the policy host)",
    )


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


def _add_refusal_options(p: argparse.ArgumentParser) -> None:
    """Every address of a host, and what a server must refuse
    (docs/addresses-and-refusals.md)."""
    g = p.add_argument_group("every address, and what the server must refuse").add_argument
    g(
        "--all-addresses",
        action="store_true",
        help="walk every A and AAAA address of the host (of each MX host with --mx) at once; "
        "labels get an address prefix such as 2001_db8__25_",
    )
    g(
        "--require-ipv4",
        nargs="?",
        const="warning",
        metavar="STATE",
        help="with --all-addresses: no IPv4 address is WARNING (or STATE)",
    )
    g(
        "--require-ipv6",
        nargs="?",
        const="warning",
        metavar="STATE",
        help="with --all-addresses: no IPv6 address is WARNING (or STATE)",
    )
    g(
        "--relay-test",
        dest="relay_tests",
        action="append",
        default=[],
        metavar="ADDRESS",
        help="after the RCPTs, RCPT TO this address of a domain the server must not relay "
        "for: 5xx is OK, 2xx CRITICAL (open relay); then RSET; never DATA; repeatable",
    )
    g(
        "--relay-tempfail-state",
        metavar="STATE",
        help="the state when a --relay-test address gets 4xx (default: warning)",
    )
    g(
        "--no-plaintext-auth",
        nargs="?",
        const="critical",
        metavar="STATE",
        help="AUTH offered before TLS is CRITICAL (or STATE, e.g. warning)",
    )
    g(
        "--starttls-required",
        action="store_true",
        help="MAIL FROM before STARTTLS must be refused (5xx); accepted is CRITICAL; implies -S",
    )


def _add_round_trip_options(p: argparse.ArgumentParser) -> None:
    """The round trip (docs/round-trip.md): after DATA, find the probe in the mailbox."""
    g = p.add_argument_group(
        "round trip",
        "prove that the --data probe reached the mailbox; implies --data; "
        "TLS verified with --ca-file/--insecure like SMTP",
    ).add_argument
    g(
        "--imap",
        metavar="URL",
        help="mailbox to find the probe in: imaps://HOST[:PORT] or imap://HOST[:PORT] (STARTTLS)",
    )
    g("--imap-user", metavar="USER", help="IMAP login name")
    g("--imap-password-file", metavar="FILE", help="read the IMAP password from FILE")
    g("--imap-password-env", metavar="NAME", help="take the IMAP password from variable NAME")
    g("--imap-folder", metavar="FOLDER", help="folder the probe is filed in (default: INBOX)")
    g(
        "--pop3",
        metavar="URL",
        help="or a POP3 mailbox: pop3s://HOST[:PORT] or pop3://HOST[:PORT] (STLS)",
    )
    g("--pop3-user", metavar="USER", help="POP3 login name")
    g("--pop3-password-file", metavar="FILE", help="read the POP3 password from FILE")
    g("--pop3-password-env", metavar="NAME", help="take the POP3 password from variable NAME")
    g(
        "--mailbox-starttls",
        choices=STARTTLS_MODES,
        help="for imap:// and pop3://: 'optional' logs in without TLS when the server "
        "offers none (default: required)",
    )
    g(
        "--delivery-warning",
        metavar="RANGE",
        help="warning range for the seconds from the end of DATA to the probe in the mailbox",
    )
    g("--delivery-critical", metavar="RANGE", help="critical range for the delivery seconds")
    g(
        "--round-trip-state",
        metavar="FILE",
        help="asynchronous: send one probe per run, collect earlier ones, remember them in FILE",
    )
    g(
        "--lost-after",
        metavar="DURATION",
        help="with --round-trip-state: a probe not found this long is lost, CRITICAL "
        "(seconds, or with s/m/h/d; default: 1h)",
    )
