"""Untrusted text made safe to show: one sanitiser for both programs.

Servers, gateways and check commands put whatever they like into their replies,
and those replies end up in a plugin status line, a notification log or a
terminal.  A raw control character can rewrite the line on a terminal (ESC
sequences), split it in a log (CR, LF, NEL, U+2028/2029), or make it *read*
differently from what it says (the bidi overrides behind "Trojan Source",
CVE-2021-42574).  Escaping rather than dropping them keeps the evidence: an admin
sees ``\\x1b`` or ``\\u202e`` where the server sent one.

Imports nothing but ``re``: the plain check loads this on every run.
"""

from __future__ import annotations

import re

UNSAFE_CHARACTERS = (
    "\x00-\x1f\x7f-\x9f"  # C0, DEL, C1 (NEL U+0085 included)
    "\u061c\u200e\u200f"  # the bidi marks: ARABIC LETTER MARK, LRM, RLM
    "\u2028\u2029"  # LINE and PARAGRAPH SEPARATOR: line breaks to many log viewers
    "\u202a-\u202e"  # bidi embeddings and overrides (LRE RLE PDF LRO RLO)
    "\u2066-\u2069"  # bidi isolates (LRI RLI FSI PDI)
    "\ud800-\udfff"  # lone surrogates (from surrogateescape): printing them raises
)
"""A regex character class body: every character that must never be shown raw."""

TRUNCATED = "..."
_compiled: dict[str, re.Pattern[str]] = {}


def _pattern(with_bar: bool) -> re.Pattern[str]:
    """The unsafe-character class, compiled on first use: almost every text a check
    shows is plain printable ASCII, which never needs it (see _plain), and compiling
    this class costs more than the rest of a status line's work."""
    key = "bar" if with_bar else "control"
    if key not in _compiled:
        _compiled[key] = re.compile(f"[{UNSAFE_CHARACTERS}{'|' if with_bar else ''}]")
    return _compiled[key]


def _plain(text: str) -> bool:
    """No unsafe character can be in ``text``: every one of them is non-printable to
    str.isprintable() (controls, format and separator characters, surrogates)."""
    return text.isprintable()


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    if char == "|":  # the perfdata separator of the plugin API: never inside a text
        return "/"
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def escape(text: str) -> str:
    """``text`` with every unsafe character escaped and nothing else changed (``|``
    included): for whole lines of a program's own output, where ``|`` is no
    separator and nothing needs cutting, but a host name may still hold a bidi
    override."""
    return text if _plain(text) else _pattern(False).sub(_escape, text)


def clean(text: str, limit: int) -> str:
    """``text`` with every unsafe character escaped (``\\x1b``, ``\\u202e``), ``|`` as
    ``/``, and cut to at most ``limit`` characters, ending in ``...`` when cut.

    Escaping comes first, so the limit bounds what is shown, escapes included; a cut
    never splits an escape (a dangling ``\\x1`` would misstate what the server sent).
    The result is a fixed point: ``clean(clean(t, n), n) == clean(t, n)``.
    """
    unsafe = _pattern(True) if "|" in text or not _plain(text) else None
    shown = text if unsafe is None else unsafe.sub(_escape, text)
    if len(shown) <= limit:
        return shown
    if limit <= len(TRUNCATED):
        return shown[: max(limit, 0)]
    budget = limit - len(TRUNCATED)
    pieces: list[str] = []
    start = 0
    for match in unsafe.finditer(text) if unsafe is not None else ():
        plain = text[start : match.start()]
        escape = _escape(match)
        if len(plain) >= budget:
            break
        pieces.append(plain)
        budget -= len(plain)
        plain = ""
        if len(escape) > budget:
            break
        pieces.append(escape)
        budget -= len(escape)
        start = match.end()
    else:
        plain = text[start:]
    pieces.append(plain[:budget])
    return "".join(pieces) + TRUNCATED
