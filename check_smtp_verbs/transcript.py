"""The record of what went over the wire, safe to print at any verbosity.

Secrets are kept out at the moment a line is recorded (the AUTH step records a
placeholder instead of what it sends) and, as a second line of defence, every secret
the run knows of is scrubbed again from each line, raw and base64-encoded, before it
is stored.  So no later printing path can leak one, whatever it forgets.
"""

from __future__ import annotations

import base64
from typing import NamedTuple

REDACTED = "<redacted>"


class Entry(NamedTuple):
    direction: str  # "C" client, "S" server, "*" a note from the check itself
    text: str


class Transcript:
    def __init__(self) -> None:
        self.entries: list[Entry] = []
        self._secrets: list[str] = []

    def add_secret(self, secret: str) -> None:
        """Remember a secret so that no recorded line can ever contain it."""
        if not secret:
            return
        raw = secret.encode("utf-8", "surrogateescape")
        forms = {secret, base64.b64encode(raw).decode("ascii")}
        # base64 of the secret embedded at any of the three byte alignments
        for pad in (b"\0", b"\0\0"):
            encoded = base64.b64encode(pad + raw).decode("ascii")
            forms.add(encoded[4:-4] if len(encoded) > 8 else encoded)
        self._secrets.extend(sorted((f for f in forms if len(f) >= 3), key=len, reverse=True))

    def scrub(self, text: str) -> str:
        for secret in self._secrets:
            if secret in text:
                text = text.replace(secret, REDACTED)
        return text

    def client(self, text: str) -> None:
        self.entries.append(Entry("C", self.scrub(text)))

    def server(self, text: str) -> None:
        self.entries.append(Entry("S", self.scrub(text)))

    def note(self, text: str) -> None:
        self.entries.append(Entry("*", self.scrub(text)))
