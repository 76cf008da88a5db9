"""The SMS text: what comes first, how it is cut, and that it is a valid message."""

from __future__ import annotations

import email
import email.policy
import unicodedata

from hypothesis import given
from hypothesis import strategies as st

from check_smtp_verbs.notify.cli import UsageError, parse_duration
from check_smtp_verbs.notify.macros import Notification
from check_smtp_verbs.notify.message import (
    ELLIPSIS,
    GSM_ELLIPSIS,
    body,
    build,
    cut,
    fit,
    gsm_septets,
    is_gsm,
    size,
    subject,
    utf16_units,
)
from tests.notifier import ADDRESSED, T0, gateway, notify_env, problem, run_notify, sms_text

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


def test_bidi_line_separator_and_c1_characters_become_spaces_too():
    hostile = PROBLEM._replace(output="ok\u202edeueuq\u2028next\x85line\x9b31m \u2066x\u2069")
    assert body(hostile, "", 160) == ("PROBLEM mx1/smtp-verbs CRITICAL: ok deueuq next line 31m x")


# --- one SMS: GSM-7 or UCS-2 (issue 11 item 12) ------------------------------------


def test_all_gsm_text_is_cut_to_160_and_ends_in_three_dots_not_an_ellipsis():
    """A "…" is not GSM-7: it would turn the whole SMS into UCS-2 and its 70."""
    text = body(PROBLEM._replace(output="Zürich: " + "é" * 300), "", 160)
    assert len(text) == 160
    assert text.endswith("é" + GSM_ELLIPSIS)
    assert is_gsm(text)


def test_gsm_extension_characters_count_two():
    text = fit("{" * 200)
    assert text == "{" * 78 + GSM_ELLIPSIS  # 156 + 3 septets; one more brace needs 2
    assert size(text, gsm_septets) == 159
    assert fit("€" * 80) == "€" * 80  # exactly 160 septets: no cut


def test_text_with_a_character_outside_gsm_is_cut_to_70():
    output = "SMTP_VERBS CRITICAL - ☎ " + "x" * 200
    text = body(PROBLEM._replace(output=output), "", 160)
    assert len(text) == 70
    assert text.startswith("PROBLEM mx1/smtp-verbs CRITICAL: SMTP_VERBS CRITICAL - ☎ xxx")
    assert text.endswith("x" + ELLIPSIS)


def test_an_explicit_max_length_is_used_for_ucs2_text_too():
    """A gateway that joins several SMS: the user says how long, not the alphabet."""
    output = "東京" * 200
    assert len(body(PROBLEM._replace(output=output), "", 160, explicit=True)) == 160
    assert len(body(PROBLEM._replace(output=output), "", 300, explicit=True)) == 300
    assert len(body(PROBLEM._replace(output=output), "", 300)) == 70


def test_a_character_outside_gsm_past_the_cut_leaves_the_sms_gsm():
    text = fit("x" * 200 + "☎")
    assert text == "x" * 157 + GSM_ELLIPSIS


def test_characters_beyond_the_bmp_take_two_of_the_70():
    text = fit("🔥" * 100)
    assert text == "🔥" * 34 + ELLIPSIS  # 68 + 1 UTF-16 units


def test_line_breaks_and_bidi_controls_in_a_subject_are_escaped_not_fatal():
    odd = PROBLEM._replace(host="mx\x851", service="smtp\u2028verbs\u202e")
    assert subject(odd) == "PROBLEM mx\\x851/smtp\\u2028verbs\\u202e CRITICAL"
    message = build(odd, "a@example.net", "b@example.net", "", 160, 0)
    assert message["Subject"] == subject(odd)


def test_a_gsm_subject_is_cut_with_three_dots():
    long = PROBLEM._replace(service="s" * 80)
    assert subject(long).endswith(GSM_ELLIPSIS)
    assert len(subject(long)) == 60
    assert subject(long._replace(service="☎" * 80)).endswith(ELLIPSIS)


def test_the_notifier_sends_70_characters_of_ucs2_text_unless_told_a_length(smtp_server, tmp_path):
    server = smtp_server()
    output = "SMTP_VERBS CRITICAL - ☎ " + "x" * 300
    for extra in ((), ("--max-length", "160")):
        run = run_notify(
            *ADDRESSED,
            *gateway(server),
            "--throttle",
            "0",
            "--state-file",
            str(tmp_path / "s.json"),
            *extra,
            *problem(output=output),
            env=notify_env(tmp_path, T0),
        )
        assert run.returncode == 0, run.stderr
    assert [len(sms_text(message)) for message in server.messages] == [70, 160]


@given(st.text(), st.integers(min_value=20, max_value=900), st.booleans())
def test_what_is_sent_fits_one_sms_by_its_own_alphabet(text, limit, explicit):
    sent = fit(text, limit, explicit=explicit)
    if is_gsm(sent):
        assert size(sent, gsm_septets) <= limit
    else:
        assert size(sent, utf16_units) <= (limit if explicit else min(limit, 70))
    if sent != text:
        stem = sent.removesuffix(GSM_ELLIPSIS).removesuffix(ELLIPSIS).rstrip()
        assert text.startswith(stem)


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
