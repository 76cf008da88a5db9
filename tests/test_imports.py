"""Start-up stays light: message building, DNS and JSON output load only when used.

smtplib already imports part of the email package (and nagiosplugin imports json), so
what is watched is what these options add on top: the email policy/header machinery
that builds the --data message, dnspython for --mx, and our own modules for each.
Measured with ``python -X importtime`` on real runs, so a stray top-level import fails here.
"""

import re
import subprocess
import sys

import pytest

from tests.plugin import ROOT, server_args

HEAVY = {
    "email.headerregistry": "--data",
    "check_smtp_verbs.message": "--data",
    "dns.resolver": "--mx",
    "check_smtp_verbs.mx": "--mx",
    "check_smtp_verbs.json_output": "--json",
    "check_smtp_verbs.proxy": "--proxy",
    "check_smtp_verbs.commands": "-C/-R/--command-expect",
}


def imported(*args: str) -> set[str]:
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "check_smtp_verbs", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=30,
        stdin=subprocess.DEVNULL,
    )
    return set(re.findall(r"\|\s+(\S+)\s*$", done.stderr, re.MULTILINE))


def test_plain_walk_imports_none_of_them(smtp_server):
    modules = imported(
        *server_args(smtp_server(), "-f", "a@example.net", "--rcpt", "b@example.net")
    )
    assert "check_smtp_verbs.probe" in modules  # the measurement itself works
    assert not set(HEAVY) & modules


@pytest.mark.parametrize(
    "modules, option",
    [
        ({"email.headerregistry", "check_smtp_verbs.message"}, ("--data",)),
        ({"check_smtp_verbs.json_output"}, ("--json",)),
        ({"check_smtp_verbs.proxy"}, ("--proxy", "v1")),
        ({"check_smtp_verbs.commands"}, ("-C", "NOOP")),
    ],
)
def test_each_is_imported_by_its_option(smtp_server, modules, option):
    args = server_args(smtp_server(), "--rcpt", "b@example.net", *option)
    assert modules <= imported(*args)


def test_dnspython_is_imported_by_mx(dns_server):
    dns = dns_server({})
    assert "dns.resolver" in imported("--mx", "example.test", "--resolver", dns.address)
