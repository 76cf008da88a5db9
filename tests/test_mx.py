"""--mx: every MX host of a domain, concurrently, against a loopback DNS server.

Each MX host is a test SMTP server on its own loopback address (127.0.0.2, 127.0.0.3,
...), all on one port given with -p; the DNS server run by the test answers for
example.test.  No query ever reaches the system resolver.
"""

from __future__ import annotations

import json

import pytest

from tests.conftest import MX_DOMAIN as DOMAIN
from tests.plugin import run_plugin
from tests.smtpd import Script

FULL = ("-f", "probe@example.net", "--rcpt", f"postmaster@{DOMAIN}")


def test_every_mx_host_is_walked_and_all_ok(mx_hosts):
    dns, servers, args = mx_hosts(None, None, None)
    run = run_plugin("--mx", DOMAIN, *args, *FULL)
    assert run.returncode == 0, run.stdout
    assert run.status.startswith(
        "SMTP_VERBS OK - example.test: 3 of 3 MX hosts OK: mx1.example.test (10), "
        "mx2.example.test (20), mx3.example.test (30) in "
    )
    for server in servers:
        assert [c.split()[0].upper() for c in server.received] == ["EHLO", "MAIL", "RCPT", "QUIT"]
    assert {"mx1.example.test_rcpt", "mx3.example.test_quit", "dns", "total"} <= set(run.perfdata)
    assert "'mx2.example.test_rcpt'=" in run.stdout  # nagiosplugin quotes labels with dots
    # the MX records and every host's address came from the test's DNS server
    assert {("example.test", "MX")} | {(f"mx{n}.example.test", "A") for n in (1, 2, 3)} <= set(
        dns.queries
    )


def test_broken_second_mx_is_critical_and_named_first(mx_hosts):
    _, _, args = mx_hosts(None, Script(replies={"RCPT": "451 4.3.0 temporary failure"}), None)
    run = run_plugin("--mx", DOMAIN, *args, *FULL)
    assert run.returncode == 2
    assert run.status == (
        "SMTP_VERBS CRITICAL - mx2.example.test: RCPT TO:<postmaster@example.test> answered 451 "
        "(expected 250,251): 4.3.0 temporary failure; 2 of 3 MX hosts OK"
    )


def test_worst_state_wins_and_the_others_failing_are_listed(mx_hosts):
    _, _, args = mx_hosts(
        Script(replies={"RCPT": "451 4.3.0 later"}),
        None,
        Script(replies={"MAIL": "554 5.7.1 go away"}),
    )
    run = run_plugin("--mx", DOMAIN, *args, *FULL, "--warning-codes", "4xx")
    assert run.returncode == 2
    assert run.status.startswith("SMTP_VERBS CRITICAL - mx3.example.test: MAIL FROM:")
    assert run.status.endswith("; 1 of 3 MX hosts OK; also failing: mx1.example.test")


def test_hosts_are_walked_concurrently_each_within_the_deadline(mx_hosts):
    # 8 banners 0.6 s late each: one after the other they would need 4.8 s
    _, servers, args = mx_hosts(*[Script(delays={"BANNER": 0.6}) for _ in range(8)])
    run = run_plugin("--mx", DOMAIN, *args, "-t", "2.5")
    assert run.returncode == 0, run.stdout
    assert "8 of 8 MX hosts OK" in run.status
    assert all(server.connections == 1 for server in servers)


def test_ten_hosts_of_which_some_hang_end_within_the_timeout(mx_hosts):
    scripts = [Script(silent=n in (2, 5, 9)) for n in range(1, 11)]
    _, _, args = mx_hosts(*scripts)
    run = run_plugin("--mx", DOMAIN, *args, *FULL, "-t", "1")
    assert run.returncode == 2
    assert run.status == (
        "SMTP_VERBS CRITICAL - mx2.example.test: timeout after 1s waiting for the banner; "
        "7 of 10 MX hosts OK; also failing: mx5.example.test, mx9.example.test"
    )
    assert run.seconds < 1 + 2.0  # interpreter start-up included
    assert run.seconds_of("total") < 1.3


def test_mx_host_without_address_is_critical_and_named(mx_hosts):
    records = {
        DOMAIN: {"MX": ["10 mx1.example.test.", "20 mx2.example.test."]},
        "mx1.example.test": {"A": ["127.0.0.2"]},
        "mx2.example.test": {"TXT": ['"no address here"']},
    }
    _, _, args = mx_hosts(None, records=records)
    run = run_plugin("--mx", DOMAIN, *args, *FULL)
    assert run.returncode == 2
    assert run.status == (
        "SMTP_VERBS CRITICAL - mx2.example.test: cannot resolve mx2.example.test: "
        "no A/AAAA record; 1 of 2 MX hosts OK"
    )


def test_mx_host_that_does_not_exist_is_critical(mx_hosts):
    records = {DOMAIN: {"MX": ["10 gone.example.test."]}}
    _, _, args = mx_hosts(records=records)
    run = run_plugin("--mx", DOMAIN, *args)
    assert run.returncode == 2
    assert "cannot resolve gone.example.test: name does not exist (NXDOMAIN)" in run.status


def test_no_mx_falls_back_to_the_address_record(mx_hosts):
    records = {DOMAIN: {"A": ["127.0.0.2"]}}
    _, servers, args = mx_hosts(None, records=records)
    run = run_plugin("--mx", DOMAIN, *args, *FULL)
    assert run.returncode == 0, run.stdout
    assert run.status.startswith(
        "SMTP_VERBS OK - example.test: 1 of 1 hosts OK: no MX record, so its address record "
        "(RFC 5321 5.1): example.test in "
    )
    assert servers[0].connections == 1
    assert "example.test_rcpt" in run.perfdata


@pytest.mark.parametrize(
    "records, options, status, code",
    [
        ({}, {}, "example.test does not exist (NXDOMAIN)", 2),
        (
            {DOMAIN: {"TXT": ['"v=spf1 -all"']}},
            {},
            "example.test has no MX and no A/AAAA record: mail to it cannot be delivered",
            2,
        ),
        (
            {DOMAIN: {"MX": ["0 ."]}},
            {},
            "example.test has a null MX (RFC 7505): it declares that it accepts no mail",
            2,
        ),
        ({}, {"servfail": [DOMAIN]}, "cannot get the MX records of example.test from", 3),
        ({}, {"refused": [DOMAIN]}, "REFUSED", 3),
    ],
)
def test_dns_answers_without_mail_hosts_are_clean_states(mx_hosts, records, options, status, code):
    _dns, _, args = mx_hosts(records=records, **options)
    run = run_plugin("--mx", DOMAIN, *args, *FULL)
    assert run.returncode == code, run.stdout
    assert status in run.status
    assert len(run.lines) == 1 and "Traceback" not in run.stdout + run.stderr


def test_servfail_names_the_server_and_the_answer(mx_hosts):
    dns, _, args = mx_hosts(records={}, servfail=[DOMAIN])
    run = run_plugin("--mx", DOMAIN, *args)
    assert run.status == (
        f"SMTP_VERBS UNKNOWN - cannot get the MX records of example.test from "
        f"127.0.0.1:{dns.port}: SERVFAIL"
    )


def test_dns_timeout_is_unknown_within_the_deadline(mx_hosts):
    dns, _, args = mx_hosts(records={}, unanswered=[DOMAIN])
    run = run_plugin("--mx", DOMAIN, *args, "-t", "1")
    assert run.returncode == 3
    assert run.status == (
        f"SMTP_VERBS UNKNOWN - timeout after 1s waiting for the MX records of example.test "
        f"from 127.0.0.1:{dns.port}"
    )
    assert run.seconds < 1 + 2.0


def test_verbose_shows_each_host_with_its_verbs(mx_hosts):
    _, _, args = mx_hosts(None, Script(replies={"RCPT": "550 5.1.1 unknown"}))
    run = run_plugin("--mx", DOMAIN, *args, *FULL, "-v")
    assert "mx1.example.test (MX 10): OK" in run.lines
    assert "mx2.example.test (MX 20): CRITICAL" in run.lines
    assert any(
        line.startswith("CRITICAL RCPT TO:<postmaster@example.test> -> 550") for line in run.lines
    )


def test_json_lists_every_host(mx_hosts):
    _, _, args = mx_hosts(None, Script(replies={"RCPT": "550 5.1.1 unknown"}))
    run = run_plugin("--mx", DOMAIN, *args, *FULL, "--json")
    assert run.returncode == 2
    doc = json.loads(run.stdout)
    assert doc["state"] == "CRITICAL" and doc["exit_code"] == 2
    assert doc["mx"]["hosts"] == [
        {"name": "mx1.example.test", "preference": 10},
        {"name": "mx2.example.test", "preference": 20},
    ]
    assert [h["state"] for h in doc["hosts"]] == ["OK", "CRITICAL"]
    assert [h["address"] for h in doc["hosts"]] == [
        f"127.0.0.2:{args[-1]}",
        f"127.0.0.3:{args[-1]}",
    ]
    rcpt = next(s for s in doc["hosts"][1]["steps"] if s["name"] == "rcpt")
    assert (rcpt["code"], rcpt["state"]) == (550, "CRITICAL")


def test_host_name_with_resolver_is_looked_up_there(mx_hosts):
    dns, servers, args = mx_hosts(None)
    run = run_plugin("-H", "mx1.example.test", *args, *FULL)
    assert run.returncode == 0, run.stdout
    assert ("mx1.example.test", "A") in dns.queries
    assert servers[0].connections == 1


@pytest.mark.parametrize(
    "args, message",
    [
        (("--mx", "192.0.2.1"), "--mx wants a domain name such as example.net"),
        (("--mx", "a..b"), "--mx wants a domain name"),
        (("--mx", "example.test", "-H", "mx1"), "not allowed with argument"),
        (("--mx", "example.test", "--resolver", "dns.example"), "is not an IP address"),
        (
            ("--mx", "example.test", "--resolver", "127.0.0.1:0"),
            "port must be a number from 1 to 65535, not '0'",
        ),
    ],
)
def test_bad_mx_options_are_unknown(args, message):
    run = run_plugin(*args)
    assert run.returncode == 3
    assert message in run.status


def test_time_thresholds_apply_to_the_dns_look_up_and_each_host(mx_hosts):
    _, _, args = mx_hosts(None, None)
    run = run_plugin("--mx", DOMAIN, *args, "--verb-warning", "dns=0:0")
    assert run.returncode == 1
    assert run.status.startswith("SMTP_VERBS WARNING - the MX look-up of example.test took ")
    assert run.status.endswith("; 2 of 2 MX hosts OK")
    run = run_plugin("--mx", DOMAIN, *args, "--verb-critical", "banner=0:0")
    assert run.returncode == 2
    assert run.status.startswith("SMTP_VERBS CRITICAL - mx1.example.test: banner took ")
    assert run.perfdata["mx2.example.test_banner"].endswith(";;0;0")  # nagiosplugin prints 0:0 as 0


def test_json_when_dns_gives_no_hosts(mx_hosts):
    _, _, args = mx_hosts(records={})
    run = run_plugin("--mx", DOMAIN, *args, "--json")
    assert run.returncode == 2
    doc = json.loads(run.stdout)
    assert doc["summary"] == "example.test does not exist (NXDOMAIN)"
    assert doc["mx"]["state"] == "CRITICAL" and doc["hosts"] == []


def test_odd_mx_host_names_cannot_break_the_perfdata(mx_hosts):
    records = {
        DOMAIN: {"MX": ["10 mx1.example.test.", "20 mx'=2.example.test."]},
        "mx1.example.test": {"A": ["127.0.0.2"]},
    }
    _, _, args = mx_hosts(None, records=records)
    run = run_plugin("--mx", DOMAIN, *args)
    assert run.returncode == 2, run.stdout
    assert "cannot resolve mx'=2.example.test" in run.status
    assert "mx__2.example.test_total" in run.perfdata
    assert "Traceback" not in run.stdout + run.stderr


def test_timeout_state_ok_still_names_the_host_that_timed_out(mx_hosts):
    _, _, args = mx_hosts(None, Script(silent=True))
    run = run_plugin("--mx", DOMAIN, *args, "-t", "0.5:ok")
    assert run.returncode == 0
    assert run.status.endswith("; mx2.example.test: timeout after 0.5s waiting for the banner")


def test_a_host_listed_twice_is_walked_once_at_its_best_preference(mx_hosts):
    records = {
        DOMAIN: {"MX": ["20 mx1.example.test.", "10 MX1.example.test.", "30 mx2.example.test."]},
        "mx1.example.test": {"A": ["127.0.0.2"]},
        "mx2.example.test": {"A": ["127.0.0.3"]},
    }
    _, servers, args = mx_hosts(None, None, records=records)
    run = run_plugin("--mx", DOMAIN, *args)
    assert run.returncode == 0, run.stdout
    assert "2 of 2 MX hosts OK: mx1.example.test (10), mx2.example.test (30)" in run.status
    assert [server.connections for server in servers] == [1, 1]
