"""Reply-code patterns: the vocabulary users write expectations in.

Admins think in classes as much as in codes ("any 4xx is transient"), so a pattern
is a full code (``451``), a decade (``45x``) or a class (``4xx``).  Only codes an
SMTP server may legally send (2yz-5yz, RFC 5321 4.2) are accepted, so a typo such
as ``205x`` is rejected before anything is sent.
"""

from __future__ import annotations

import re

_PATTERN = re.compile(r"[2-5](?:[0-5][0-9x]|xx)", re.IGNORECASE)


class CodeSet:
    """An immutable set of reply-code patterns with a stable, user-facing spelling."""

    __slots__ = ("_patterns",)

    def __init__(self, patterns: tuple[str, ...]) -> None:
        self._patterns = patterns

    @classmethod
    def parse(cls, text: str) -> CodeSet:
        """Parse ``250,251``, ``2xx`` or ``25x``; raise ValueError naming the bad part."""
        patterns: list[str] = []
        for typed in text.split(","):
            part = typed.strip().lower()
            if not _PATTERN.fullmatch(part):
                raise ValueError(
                    f"invalid reply code pattern {typed.strip()!r} "
                    "(want a code 200-559 such as 250, a decade such as 25x or a class such as 2xx)"
                )
            if part not in patterns:
                patterns.append(part)
        return cls(tuple(patterns))

    def matches(self, code: int | None) -> bool:
        if code is None:
            return False
        text = str(code)
        return (
            any(
                all(p == "x" or p == c for p, c in zip(pattern, text)) for pattern in self._patterns
            )
            and len(text) == 3
        )

    def __or__(self, other: CodeSet) -> CodeSet:
        return CodeSet(
            self._patterns + tuple(p for p in other._patterns if p not in self._patterns)
        )

    def __eq__(self, other: object) -> bool:
        return isinstance(other, CodeSet) and set(self._patterns) == set(other._patterns)

    def __hash__(self) -> int:
        return hash(frozenset(self._patterns))

    def __str__(self) -> str:
        return ",".join(self._patterns)

    def __repr__(self) -> str:
        return f"CodeSet.parse({str(self)!r})"
