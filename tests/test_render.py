"""One presentation for one host and many: the text and --json say the same, in plain words.

Every label is judged against the walk it came from, never guessed from its spelling:
a label that merely ends in ``total`` is not the whole run, and one MX host's name that
is a prefix of another's does not inherit the other's failures.
"""

from __future__ import annotations

import json

from tests.conftest import MX_DOMAIN as DOMAIN
from tests.plugin import run_plugin, server_args
from tests.smtpd import Script

FULL = ("-f", "probe@example.net", "--rcpt", "postmaster@example.net")


def test_quit_after_connect_says_connected_without_an_empty_step_list(smtp_server):
    server = smtp_server()
    run = run_plugin(*server_args(server, "--quit-after", "connect"))
    assert run.returncode == 0, run.stdout
    assert run.status.startswith(f"SMTP_VERBS OK - {server.host}:{server.port} connected in ")
    assert "  " not in run.status


def test_a_microsecond_threshold_prints_as_plain_decimals_in_the_status_and_perfdata(
    smtp_server,
):
    run = run_plugin(*server_args(smtp_server(), *FULL, "-w", "0.000001", "-c", "0.00001:"))
    assert run.returncode == 1, run.stdout
    assert run.status.startswith("SMTP_VERBS WARNING - the whole conversation took ")
    assert run.status.endswith("s (outside range 0:0.000001)")
    assert run.perfdata["total"].endswith("s;0.000001;0.00001:;0")
    assert "e-0" not in run.stdout


def test_a_verb_threshold_prints_as_plain_decimals_in_the_message(smtp_server):
    run = run_plugin(*server_args(smtp_server(), *FULL, "--verb-critical", "rcpt=0.000001"))
    assert run.returncode == 2, run.stdout
    assert run.status.startswith("SMTP_VERBS CRITICAL - RCPT TO:<postmaster@example.net> took ")
    assert run.status.endswith("s (outside range 0:0.000001)")
    assert run.perfdata["rcpt"].endswith("s;;0.000001;0")


def test_a_command_whose_label_ends_in_total_is_named_not_taken_for_the_whole_run(
    smtp_server,
):
    server = smtp_server(replies={"XTOTAL": "250 2.0.0 counted"})
    run = run_plugin(*server_args(server, *FULL, "-C", "XTOTAL", "--verb-critical", "xtotal=0"))
    assert run.returncode == 2, run.stdout
    assert run.status.startswith("SMTP_VERBS CRITICAL - XTOTAL took ")
    assert run.status.endswith("s (outside range 0:0)")


def test_an_extra_banner_command_is_named_by_its_command_not_as_the_banner(smtp_server):
    server = smtp_server(replies={"BANNER": "502 5.5.2 no such command"})
    run = run_plugin(*server_args(server, *FULL, "-C", "BANNER"))
    assert run.returncode == 2, run.stdout
    assert run.status == (
        "SMTP_VERBS CRITICAL - BANNER answered 502 (expected 2xx): 5.5.2 no such command"
    )


def test_json_host_state_is_its_own_when_its_label_prefix_starts_another_hosts(mx_hosts):
    # "mx.example.test_" (the first host's label prefix) starts every label of the second
    short, long = "mx.example.test", "mx.example.test_2.example.test"
    records = {
        DOMAIN: {"MX": [f"10 {short}.", f"20 {long}."]},
        short: {"A": ["127.0.0.2"]},
        long: {"A": ["127.0.0.3"]},
    }
    _, _, args = mx_hosts(None, Script(replies={"RCPT": "451 4.3.0 later"}), records=records)
    rcpt = ("-f", "probe@example.net", "--rcpt", f"postmaster@{DOMAIN}")
    run = run_plugin("--mx", DOMAIN, *args, *rcpt, "--json")
    assert run.returncode == 2, run.stdout
    doc = json.loads(run.stdout)
    assert [(h["host"], h["state"]) for h in doc["hosts"]] == [
        (short, "OK"),
        (long, "CRITICAL"),
    ]
    assert doc["summary"].startswith(f"{long}: RCPT TO:<postmaster@{DOMAIN}> answered 451 ")
    assert doc["summary"].endswith("; 1 of 2 MX hosts OK")

    text = run_plugin("--mx", DOMAIN, *args, *rcpt, "-v")
    assert text.status == f"SMTP_VERBS CRITICAL - {doc['summary']}"  # one wording for both
    assert f"{short} (MX 10): OK" in text.lines
    assert f"{long} (MX 20): CRITICAL" in text.lines


def test_json_with_many_recipients_has_every_step_once_in_order_and_judged(smtp_server):
    recipients = [f"user{n}@example.net" for n in range(1, 3001)]
    args = [arg for rcpt in recipients for arg in ("--rcpt", rcpt)]
    server = smtp_server(rcpt_replies={"user3000@example.net": "451 4.3.0 later"})
    run = run_plugin(*server_args(server, "-f", "probe@example.net", *args, "--json"))
    doc = json.loads(run.stdout)
    steps = [s for s in doc["hosts"][0]["steps"] if s["verb"] == "rcpt"]
    assert [s["command"] for s in steps] == [f"RCPT TO:<{r}>" for r in recipients]
    assert [s["name"] for s in steps] == ["rcpt"] + [f"rcpt_{n}" for n in range(2, 3001)]
    assert [s["state"] for s in steps].count("OK") == 2999
    assert steps[-1]["state"] == "CRITICAL"
    assert doc["hosts"][0]["state"] == "CRITICAL" == doc["state"]
