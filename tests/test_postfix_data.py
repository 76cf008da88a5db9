"""Send-through against the real MTA: the probe must land in Postfix's Maildir."""

import email
import json

import pytest

from tests.plugin import run_plugin, server_args

pytestmark = pytest.mark.postfix


def test_probe_message_is_delivered_to_the_mailbox(postfix):
    before = len(postfix.delivered("postmaster"))
    args = ("-f", "probe@verbs.test", "--rcpt", "postmaster@verbs.test", "--data", "--json")
    run = run_plugin(*server_args(postfix, *args, "--subject", "monitoring probe 42"))
    assert run.returncode == 0, run.stdout
    doc = json.loads(run.stdout)
    dot = next(s for s in doc["hosts"][0]["steps"] if s["name"] == "dot")
    assert dot["code"] == 250 and "queued as" in dot["lines"][0]
    delivered = postfix.wait_for_delivery("postmaster", count=before + 1)
    message = email.message_from_bytes(delivered[-1])
    assert message["Message-ID"] == doc["hosts"][0]["message_id"]
    assert message["Subject"] == "monitoring probe 42"
    assert message["X-Check-SMTP-Verbs"] == "probe"
    assert message["From"] == "probe@verbs.test"
    assert message["To"] == "postmaster@verbs.test"
    assert message["Return-Path"] == "<probe@verbs.test>"


def test_quit_after_data_delivers_nothing(postfix):
    before = len(postfix.delivered("probe"))
    args = ("-f", "probe@verbs.test", "--rcpt", "probe@verbs.test", "--data")
    run = run_plugin(*server_args(postfix, *args, "--quit-after", "data"))
    assert run.returncode == 0, run.stdout
    assert "DATA 354 in" in run.status
    postfix.wait_for_log(r"lost connection after DATA")
    assert len(postfix.delivered("probe")) == before


def test_lmtp_greeting_against_postfix_smtpd_is_critical(postfix):
    run = run_plugin(*server_args(postfix, "-L"))
    assert run.returncode == 2
    assert run.status.startswith("SMTP_VERBS CRITICAL - LHLO ")
    assert "answered 500 (expected 250): 5.5.2 Error: command not recognized" in run.status


def test_vrfy_command_against_postfix(postfix):
    run = run_plugin(*server_args(postfix, "-C", "VRFY postmaster@verbs.test", "-R", "^252 "))
    assert run.returncode == 0, run.stdout
    assert "VRFY 252" in run.status
