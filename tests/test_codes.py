"""Reply-code patterns: what users may write in --expect and --warning-codes."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from check_smtp_verbs.codes import CodeSet

codes = st.integers(min_value=200, max_value=559).filter(lambda c: c // 10 % 10 <= 5)


def test_full_codes_match_only_themselves():
    rcpt = CodeSet.parse("250,251")
    assert rcpt.matches(250) and rcpt.matches(251)
    assert not rcpt.matches(252) and not rcpt.matches(450)


def test_class_and_decade_patterns():
    assert CodeSet.parse("4xx").matches(451)
    assert CodeSet.parse("4XX").matches(421)
    assert CodeSet.parse("45x").matches(454)
    assert not CodeSet.parse("45x").matches(421)


def test_missing_code_never_matches():
    assert not CodeSet.parse("2xx").matches(None)


@pytest.mark.parametrize(
    "bad", ["", "25", "2500", "abc", "650", "160", "2x0", "x50", "25x,", "270"]
)
def test_invalid_patterns_are_refused_with_the_bad_part_named(bad):
    with pytest.raises(ValueError, match="invalid reply code pattern"):
        CodeSet.parse(bad)


def test_spelling_is_kept_for_messages_and_duplicates_dropped():
    assert str(CodeSet.parse("250, 251,250")) == "250,251"


def test_union_keeps_both_sets():
    both = CodeSet.parse("250") | CodeSet.parse("5xx")
    assert both.matches(250) and both.matches(554) and str(both) == "250,5xx"


@given(codes)
def test_every_code_matches_its_own_class_decade_and_self(code):
    text = str(code)
    for pattern in (text, text[:2] + "x", text[0] + "xx"):
        assert CodeSet.parse(pattern).matches(code)


@given(codes, codes)
def test_a_code_matches_another_code_only_when_equal(a, b):
    assert CodeSet.parse(str(a)).matches(b) == (a == b)


@given(st.text(max_size=12))
def test_parse_either_succeeds_or_raises_value_error(text):
    try:
        parsed = CodeSet.parse(text)
    except ValueError:
        return
    assert str(parsed)
