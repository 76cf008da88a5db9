"""--all-addresses: every A and AAAA address of a name, as the plugin reports it.

The name dual.example.test has A 127.0.0.1 and AAAA ::1 in the loopback DNS server,
with a test SMTP server on each address (one port); one family is broken by a 421
banner or by stopping its listener, each family in turn.
"""

from __future__ import annotations

import json

import pytest

from tests.conftest import MX_DOMAIN
from tests.plugin import run_plugin
from tests.relay_fixtures import DUAL_NAME, IPV4, IPV6, REFUSED_BANNER
from tests.smtpd import Script

FULL = ("-f", "probe@example.net", "--rcpt", "postmaster@example.test")


def check(servers, *extra: str):
    return run_plugin(*servers.args, "--all-addresses", *FULL, *extra)


def test_both_addresses_fine_is_ok_and_names_each_with_its_family(dual_stack):
    servers = dual_stack()
    run = check(servers)
    assert run.returncode == 0, run.stdout
    assert run.status.startswith(
        f"SMTP_VERBS OK - {DUAL_NAME}: 2 of 2 addresses OK: 127.0.0.1 (IPv4), ::1 (IPv6) in "
    )
    assert {"127_0_0_1_rcpt", "__1_rcpt", "127_0_0_1_total", "__1_total", "total"} <= set(
        run.perfdata
    )
    assert "'" not in run.stdout.split("|", 1)[1]  # plain \w labels: nothing to quote
    assert servers.ipv4.connections == servers.ipv6.connections == 1


@pytest.mark.parametrize(
    ("broken", "address", "fine"),
    [("ipv4", "127.0.0.1 (IPv4)", "__1_"), ("ipv6", "::1 (IPv6)", "127_0_0_1_")],
)
def test_a_family_answering_421_is_critical_and_named_with_its_family(
    dual_stack, broken, address, fine
):
    servers = dual_stack(**{broken: Script(banner=REFUSED_BANNER)})
    run = check(servers)
    assert run.returncode == 2
    assert run.status == (
        f"SMTP_VERBS CRITICAL - {address}: the banner was 421 (expected 220): "
        "4.3.2 Service not available, closing transmission channel; 1 of 2 addresses OK"
    )
    assert f"{fine}rcpt" in run.perfdata


@pytest.mark.parametrize(
    ("stopped", "shown", "connect"),
    [("ipv4", "127.0.0.1 (IPv4)", "127.0.0.1"), ("ipv6", "::1 (IPv6)", "[::1]")],
)
def test_a_family_whose_listener_is_gone_is_critical_and_named(dual_stack, stopped, shown, connect):
    servers = dual_stack()
    getattr(servers, stopped).stop()
    run = check(servers)
    assert run.returncode == 2
    assert run.status == (
        f"SMTP_VERBS CRITICAL - {shown}: cannot connect to {connect}:{servers.port}: "
        "connection refused; 1 of 2 addresses OK"
    )


def test_verbose_shows_each_look_up_and_each_addresses_walk(dual_stack):
    servers = dual_stack(ipv6=Script(banner=REFUSED_BANNER))
    run = check(servers, "-v")
    assert f"A look-up of {DUAL_NAME}: {IPV4} (" in run.stdout
    assert f"AAAA look-up of {DUAL_NAME}: {IPV6} (" in run.stdout
    assert "127.0.0.1 (IPv4): OK" in run.lines
    assert "::1 (IPv6): CRITICAL" in run.lines
    assert f"-> [::1]:{servers.port} (" in run.stdout


def test_minus_6_walks_only_the_ipv6_address(dual_stack):
    servers = dual_stack()
    run = check(servers, "-6")
    assert run.returncode == 0, run.stdout
    assert "1 of 1 addresses OK: ::1 (IPv6)" in run.status
    assert servers.ipv4.connections == 0


def test_one_family_only_is_fine_unless_required(dual_stack):
    servers = dual_stack(records={DUAL_NAME: {"A": [IPV4]}})
    assert check(servers).returncode == 0
    run = check(servers, "--require-ipv6")
    assert run.returncode == 1
    assert run.status == (
        f"SMTP_VERBS WARNING - {DUAL_NAME} has no IPv6 address (IPv6: no AAAA record); "
        "1 of 1 addresses OK"
    )
    assert check(servers, "--require-ipv6=critical").returncode == 2
    assert check(servers, "--require-ipv4").returncode == 0


def test_a_name_without_any_address_is_critical(dual_stack):
    servers = dual_stack(records={DUAL_NAME: {}})
    run = check(servers)
    assert run.returncode == 2
    assert run.status.startswith(
        f"SMTP_VERBS CRITICAL - no address for {DUAL_NAME} (IPv4: no A record; "
        "IPv6: no AAAA record)"
    )


def test_json_has_each_address_and_the_look_ups(dual_stack):
    servers = dual_stack(ipv6=Script(banner=REFUSED_BANNER))
    run = check(servers, "--json")
    doc = json.loads(run.stdout)
    assert doc["state"] == "CRITICAL"
    assert [(h["address"], h["state"]) for h in doc["hosts"]] == [
        (f"{IPV4}:{servers.port}", "OK"),
        (f"[{IPV6}]:{servers.port}", "CRITICAL"),
    ]
    assert [(h["target"], h["family"]) for h in doc["hosts"]] == [
        ("127.0.0.1 (IPv4)", "IPv4"),
        ("::1 (IPv6)", "IPv6"),
    ]
    assert doc["addresses"] == [
        {
            "host": DUAL_NAME,
            "state": "OK",
            "lookups": [
                {"family": "IPv4", "addresses": [IPV4], "error": None},
                {"family": "IPv6", "addresses": [IPV6], "error": None},
            ],
        }
    ]


def test_with_mx_every_host_and_every_address_is_walked(smtp_server, dns_server):
    first = smtp_server(host="127.0.0.2")
    second = smtp_server(host=IPV6, port=first.port, banner=REFUSED_BANNER)
    dns = dns_server(
        {
            MX_DOMAIN: {"MX": [f"10 mx1.{MX_DOMAIN}."]},
            f"mx1.{MX_DOMAIN}": {"A": ["127.0.0.2"], "AAAA": [IPV6]},
        }
    )
    run = run_plugin(
        "--mx", MX_DOMAIN, "--resolver", dns.address, "-p", str(first.port),
        "--all-addresses", *FULL,
    )  # fmt: skip
    assert run.returncode == 2
    assert run.status.startswith(
        f"SMTP_VERBS CRITICAL - mx1.{MX_DOMAIN} ::1 (IPv6): the banner was 421 (expected 220)"
    )
    assert run.status.endswith("; 1 of 2 addresses OK")
    assert {f"'mx1.{MX_DOMAIN}_127_0_0_2_rcpt'", f"'mx1.{MX_DOMAIN}___1_banner'"} <= {
        f"'{label}'" for label in run.perfdata
    }
    assert first.connections == second.connections == 1


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--require-ipv6",), "--require-ipv6 needs --all-addresses"),
        (("--all-addresses", "-4", "--require-ipv6"), "--require-ipv6 contradicts -4"),
        (("--all-addresses", "--require-ipv4=sometimes"), "--require-ipv4: unknown state"),
        (
            (
                "--all-addresses",
                "--rcpt",
                "a@example.test",
                "--imap",
                "imaps://127.0.0.1",
                "--imap-user",
                "a",
                "--imap-password-env",
                "HOME",
            ),
            "--imap follows one probe through one server: not with --all-addresses",
        ),
    ],
)
def test_bad_address_options_are_unknown_in_one_line_and_nothing_is_sent(
    smtp_server, args, message
):
    server = smtp_server()
    run = run_plugin("-H", server.host, "-p", str(server.port), *args)
    assert run.returncode == 3
    assert run.stdout.startswith(f"SMTP_VERBS UNKNOWN - {message}")
    assert len(run.lines) == 1
    assert server.connections == 0


@pytest.mark.postfix
def test_a_real_postfix_on_both_families_is_walked_at_each_address(dns_server):
    """Postfix listening on 127.0.0.1 and [::1] with one port, as a dual-stack MX does."""
    from tests.postfix import PrivatePostfix
    from tests.relay_fixtures import need_postfix

    need_postfix()
    with PrivatePostfix(ipv6=True, name="dual-stack") as instance:
        dns = dns_server({DUAL_NAME: {"A": [IPV4], "AAAA": [IPV6]}})
        run = run_plugin(
            "-H", DUAL_NAME, "-p", str(instance.port), "--resolver", dns.address,
            "--all-addresses", "--require-ipv6=critical",
            "-f", "probe@verbs.test", "--rcpt", "postmaster@verbs.test",
        )  # fmt: skip
        assert run.returncode == 0, run.stdout
        assert "2 of 2 addresses OK: 127.0.0.1 (IPv4), ::1 (IPv6)" in run.status
        assert instance.wait_for_log(r"connect from unknown\[::1\]")
        assert instance.wait_for_log(r"connect from unknown\[127\.0\.0\.1\]")
