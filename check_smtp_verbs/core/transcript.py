"""The record of what went over the wire, safe to print at any verbosity.

Secrets are kept out at the moment a line is recorded (the AUTH step records a
placeholder instead of what it sends) and, as a second line of defence, every secret
the run knows of is scrubbed again from each line, raw and base64-encoded, before it
is stored.  So no later printing path can leak one, whatever it forgets.
"""

from __future__ import annotations

import re
from typing import NamedTuple

REDACTED = "<redacted>"


class Entry(NamedTuple):
    direction: str  # "C" client, "S" server, "*" a note from the check itself
    text: str


class Transcript:
    def __init__(self) -> None:
        self.entries: list[Entry] = []
        self._secrets: list[str] = []
        self._encoded: list[re.Pattern[str]] = []

    def add_secret(self, secret: str) -> None:
        """Remember a secret so that no recorded line can ever contain it.

        Base64 forms are matched inside longer base64 text too (an AUTH PLAIN blob
        carries the password at one of three byte alignments), and then the whole
        base64 word is replaced: cutting out only the aligned middle would leave a
        few characters of the secret readable at each edge.
        """
        if not secret:
            return
        import base64  # only runs with a secret (AUTH) pay for it

        raw = secret.encode("utf-8", "surrogateescape")
        forms = {base64.b64encode(raw).decode("ascii").rstrip("=")}
        # base64 of the secret embedded at any of the three byte alignments
        for pad in (b"\0", b"\0\0"):
            encoded = base64.b64encode(pad + raw).decode("ascii")
            forms.add(encoded[4:-4] if len(encoded) > 8 else encoded.rstrip("="))
        self._secrets.append(secret)
        self._secrets.sort(key=len, reverse=True)
        self._encoded.extend(
            re.compile(f"[A-Za-z0-9+/]*{re.escape(form)}[A-Za-z0-9+/]*=*")
            for form in forms
            if len(form) >= 3
        )

    def scrub(self, text: str) -> str:
        for secret in self._secrets:
            if secret in text:
                text = text.replace(secret, REDACTED)
        for pattern in self._encoded:
            text = pattern.sub(REDACTED, text)
        return text

    def client(self, text: str) -> None:
        self.entries.append(Entry("C", self.scrub(text)))

    def server(self, text: str) -> None:
        self.entries.append(Entry("S", self.scrub(text)))

    def note(self, text: str) -> None:
        self.entries.append(Entry("*", self.scrub(text)))
