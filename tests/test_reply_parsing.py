"""The strict reply parser that sits behind smtplib's framing (RFC 5321 4.2)."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from check_smtp_verbs.core.client import InvalidReply, parse_reply

texts = st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=60).map(
    str.strip
)
codes = st.integers(200, 559).filter(lambda c: c // 10 % 10 <= 5)


def lines_of(code: int, texts: list[str]) -> list[bytes]:
    last = len(texts) - 1
    return [f"{code}{'-' if i < last else ' '}{t}\r\n".encode() for i, t in enumerate(texts)]


@given(codes, st.lists(texts, min_size=1, max_size=8))
def test_any_well_formed_reply_round_trips(code, parts):
    reply = parse_reply(lines_of(code, parts))
    assert reply.code == code
    assert reply.lines == tuple(parts)


def test_code_alone_is_a_valid_reply():
    assert parse_reply([b"250\r\n"]).code == 250


def test_bare_lf_is_tolerated_like_smtplib_does():
    assert parse_reply([b"250 ok\n"]).lines == ("ok",)


@pytest.mark.parametrize(
    ("raw", "why"),
    [
        ([b"25O ok\r\n"], "no valid 3-digit code"),
        ([b"999 ok\r\n"], "no valid 3-digit code"),
        ([b"hello\r\n"], "no valid 3-digit code"),
        ([b"250ok\r\n"], "no space after the reply code"),
        ([b"250-first\r\n", b"251 second\r\n"], "continuation line has code 251 after 250"),
        ([b"250-first\r\n", b"250-second\r\n"], "broken multi-line reply"),
        ([b"250 partial"], "not terminated"),
        ([], "empty reply"),
    ],
)
def test_malformed_replies_are_named(raw, why):
    with pytest.raises(InvalidReply, match=why):
        parse_reply(raw)


def test_nul_and_non_utf8_text_is_kept_escaped_not_fatal():
    reply = parse_reply([b"250 caf\xe9 \x00 ok\r\n"])
    assert reply.code == 250
    assert reply.lines == ("caf\\xe9 \x00 ok",)


@given(st.lists(st.binary(max_size=40), max_size=5))
def test_arbitrary_bytes_give_a_reply_or_invalid_reply_never_another_error(raw):
    try:
        parse_reply(raw)
    except InvalidReply as exc:
        assert str(exc)
