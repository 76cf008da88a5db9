"""The SMS text: what comes first, how it is cut, and that it is a valid message."""

from __future__ import annotations

import email
import email.policy
import unicodedata

from hypothesis import given
from hypothesis import strategies as st

from check_smtp_verbs.notify.cli import UsageError, parse_duration
from check_smtp_verbs.notify.macros import Notification
from check_smtp_verbs.notify.message import ELLIPSIS, body, build, cut

PROBLEM = Notification("PROBLEM", "mx1", "smtp-verbs", "CRITICAL", "RCPT TO answered 451")


@given(st.text(), st.integers(min_value=1, max_value=400))
def test_cut_never_exceeds_the_limit_and_keeps_a_prefix(text, limit):
    result = cut(text, limit)
    assert len(result) <= limit
    if len(text) <= limit:
        assert result == text
    else:
        assert result.endswith(ELLIPSIS)
        assert text.startswith(result[:-1].rstrip())


def test_cut_does_not_separate_a_letter_from_its_accent():
    text = "e\u0301" * 10  # e + combining acute accent
    result = cut(text, 6)  # a plain slice would end in a bare "e" (its accent cut off)
    assert result == "e\u0301e\u0301" + ELLIPSIS
    assert unicodedata.combining(text[len(result) - 1]) == 0  # the cut is before a base letter


def test_the_head_and_the_suppressed_note_survive_a_long_output():
    long = PROBLEM._replace(output="x" * 500, long_output="more\nlines")
    text = body(long, "3 suppressed since 05:10", 70)
    assert len(text) == 70
    assert text.startswith("PROBLEM mx1/smtp-verbs CRITICAL (3 suppressed since 05:10): xxx")


def test_layout_and_control_characters_become_single_spaces():
    messy = PROBLEM._replace(output="line one\r\n\tline\x1b[31m two", long_output="\n\nthree")
    assert body(messy, "", 160) == "PROBLEM mx1/smtp-verbs CRITICAL: line one line [31m two three"


def test_the_message_is_valid_rfc_5322_with_a_unique_message_id():
    first = build(PROBLEM, "alerts@example.net", "0419@sms.example.net", "", 160, 1.8e9)
    second = build(PROBLEM, "alerts@example.net", "0419@sms.example.net", "", 160, 1.8e9)
    assert first["Message-ID"] != second["Message-ID"]
    parsed = email.message_from_bytes(first.as_bytes(), policy=email.policy.strict)
    assert parsed["Subject"] == "PROBLEM mx1/smtp-verbs CRITICAL"
    assert parsed["Date"].datetime.timestamp() == 1.8e9
    assert parsed["Content-Transfer-Encoding"] == "7bit"
    assert not parsed.defects


def test_non_ascii_output_is_quoted_printable_and_decodes_back():
    message = build(
        PROBLEM._replace(output="Zürich ☎ down"), "a@example.net", "b@example.net", "", 160, 0
    )
    assert message["Content-Transfer-Encoding"] == "quoted-printable"
    assert message.get_content().rstrip("\n").endswith("Zürich ☎ down")


@given(st.integers(min_value=0, max_value=10**6), st.sampled_from(["", "s", "m", "h", "d"]))
def test_durations_parse_in_every_unit(number, unit):
    factor = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}[unit]
    assert parse_duration(f"{number}{unit}") == number * factor


@given(st.text())
def test_durations_either_parse_or_raise_a_usage_error(text):
    try:
        assert parse_duration(text) >= 0
    except UsageError as exc:
        assert "--throttle wants" in str(exc)
