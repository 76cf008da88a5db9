"""Option values that become thresholds and deadlines, parsed without a server."""

import math

import nagiosplugin
import pytest
from hypothesis import given
from hypothesis import strategies as st

from check_smtp_verbs.cli import MAX_TIMEOUT, UsageError, _range, parse_timeout, settings_from


@given(st.floats(min_value=0.001, max_value=MAX_TIMEOUT, allow_nan=False))
def test_any_positive_number_of_seconds_is_a_timeout_defaulting_to_critical(seconds):
    timeout, state = parse_timeout(repr(seconds))
    assert math.isclose(timeout, seconds) and state == nagiosplugin.Critical


@pytest.mark.parametrize(
    "text, state",
    [
        ("3:ok", nagiosplugin.Ok),
        ("3:WARNING", nagiosplugin.Warn),
        ("3:2", nagiosplugin.Critical),
        ("3:unknown", nagiosplugin.Unknown),
        ("3:3", nagiosplugin.Unknown),
        ("0.25", nagiosplugin.Critical),
    ],
)
def test_timeout_state_by_name_or_number(text, state):
    assert parse_timeout(text)[1] == state


@given(st.text(max_size=12))
def test_timeout_text_is_a_timeout_or_a_usage_error(text):
    try:
        timeout, _ = parse_timeout(text)
    except UsageError as exc:
        assert "\n" not in str(exc)
    else:
        assert timeout > 0 and math.isfinite(timeout)


@given(st.text(max_size=12))
def test_range_text_is_a_range_or_a_usage_error_never_a_crash(text):
    try:
        parsed = _range(text, "--warning")
    except UsageError as exc:
        assert str(exc).startswith("--warning: invalid range")
    else:
        assert isinstance(parsed, nagiosplugin.Range)


@given(
    st.floats(min_value=0, max_value=1e4, allow_nan=False),
    st.floats(min_value=0, max_value=1e4, allow_nan=False),
)
def test_a_range_alerts_exactly_outside_its_bounds(end, value):
    assert _range(f"{end:f}", "-w").match(value) == (value <= float(f"{end:f}"))


def test_settings_collect_per_verb_ranges_and_codes():
    settings = settings_from(
        [
            "-H",
            "127.0.0.1",
            "--verb-warning",
            "rcpt=0.5",
            "-c",
            "3",
            "--warning-codes",
            "4xx",
            "--warning-codes",
            "rcpt=550",
            "--expect",
            "mail=2xx",
        ]
    )
    assert settings.time_warning["rcpt"] == nagiosplugin.Range("0.5")
    assert settings.time_critical["total"] == nagiosplugin.Range("3")
    assert str(settings.warning_codes["*"]) == "4xx"
    assert str(settings.warning_codes["rcpt"]) == "550"
    assert str(settings.expected("mail")) == "2xx"
    assert str(settings.expected("rcpt")) == "250,251"
