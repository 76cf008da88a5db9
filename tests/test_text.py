"""The shared sanitiser: what a server says can be shown, never obeyed.

Properties first (no unsafe character survives, the result is a fixed point), then
the characters that motivated each class, one by one.
"""

from __future__ import annotations

import re
import unicodedata

import pytest
from hypothesis import given
from hypothesis import strategies as st

from check_smtp_verbs.text import UNSAFE_CHARACTERS, clean, escape

BIDI_CONTROLS = "\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
LINE_BREAKERS = "\r\n\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"
_UNSAFE = re.compile(f"[{UNSAFE_CHARACTERS}|]")

# Text rich in exactly the characters that matter, plus everything else.
hostile = st.text(
    alphabet=st.one_of(
        st.sampled_from(BIDI_CONTROLS + LINE_BREAKERS + "|\\\x00\x1b\x7f\x9b"),
        st.characters(),
    )
)


@given(hostile, st.integers(min_value=0, max_value=300))
def test_no_control_bidi_or_line_separator_character_survives(text, limit):
    shown = clean(text, limit)
    assert len(shown) <= limit
    for char in shown:
        assert unicodedata.category(char) not in ("Cc", "Zl", "Zp", "Cs"), repr(shown)
        assert char not in BIDI_CONTROLS + "|", repr(shown)
    assert len(shown.splitlines()) <= 1


@given(hostile, st.integers(min_value=0, max_value=300))
def test_cleaning_twice_changes_nothing(text, limit):
    once = clean(text, limit)
    assert clean(once, limit) == once


@given(st.text(), st.integers(min_value=0, max_value=300))
def test_text_that_is_already_clean_and_short_is_shown_as_it_is(text, limit):
    text = _UNSAFE.sub("", text)[:limit]
    assert clean(text, limit) == text


@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        ("250 ok\r\n", "250 ok\\x0d\\x0a"),
        ("\x1b[2J\x1b[31mqueued", "\\x1b[2J\\x1b[31mqueued"),  # ESC: terminal control
        ("a|b", "a/b"),  # the perfdata separator
        ("tab\there", "tab\\x09here"),
        ("del\x7f", "del\\x7f"),
        ("nel\x85next", "nel\\x85next"),  # C1 NEL: a line break to some viewers
        ("csi\x9b31m", "csi\\x9b31m"),  # C1 CSI: a one-byte ESC [ on some terminals
        ("line\u2028break", "line\\u2028break"),
        ("para\u2029graph", "para\\u2029graph"),
        ("250 \u202eok deueuq", "250 \\u202eok deueuq"),  # RIGHT-TO-LEFT OVERRIDE
        ("\u2066isolated\u2069", "\\u2066isolated\\u2069"),
        ("\u200emark\u200f", "\\u200emark\\u200f"),
        ("\ud800", "\\ud800"),  # a lone surrogate would raise when printed
        ("Zürich ☎ 東京", "Zürich ☎ 東京"),  # ordinary non-ASCII text is kept
    ],
)
def test_each_unsafe_character_is_escaped_and_ordinary_text_is_kept(raw, shown):
    assert clean(raw, 200) == shown


def test_a_long_text_is_cut_after_escaping_and_ends_in_three_dots():
    assert clean("\x1b" * 100, 20) == "\\x1b\\x1b\\x1b\\x1b" + "..."
    assert clean("x" * 30, 10) == "xxxxxxx..."
    assert clean("x" * 30, 2) == "xx"


@given(hostile)
def test_escape_is_clean_without_the_cut_and_without_touching_the_bar(text):
    assert escape(text).replace("|", "/") == clean(text, 10**9)
