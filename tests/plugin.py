"""Run the plugin the way Nagios does: as a process, reading its output and exit code.

Each run is a fresh interpreter, as in production; that also keeps nagiosplugin's
process-wide Runtime singleton from leaking output between tests.
"""

from __future__ import annotations

import base64
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import NamedTuple, NoReturn

ROOT = Path(__file__).resolve().parent.parent
_PERF = re.compile(r"(?:'([^']+)'|([^\s=]+))=([^;\s]+)((?:;[^;\s]*){0,4})")


class Run(NamedTuple):
    returncode: int
    stdout: str
    stderr: str
    seconds: float

    @property
    def lines(self) -> list[str]:
        return self.stdout.splitlines()

    @property
    def status(self) -> str:
        """The status line without perfdata."""
        return self.lines[0].split(" | ")[0] if self.lines else ""

    @property
    def perfdata(self) -> dict[str, str]:
        """label -> the whole value field (``0.000213s;;1;0``)."""
        text = " ".join(part.split("|", 1)[1] for part in self.lines if "|" in part)
        return {(m[1] or m[2]): m[3] + m[4] for m in _PERF.finditer(text)}

    def seconds_of(self, label: str) -> float:
        return float(self.perfdata[label].split(";")[0].rstrip("s"))


def run_plugin(
    *args: str,
    command: str = "check_smtp_verbs",
    timeout: float = 30,
    prefix: tuple[str, ...] = (),
    python: str = sys.executable,
    env: dict[str, str] | None = None,
) -> Run:
    """Run ``python -m command args`` from the repository root, as a fresh process;
    ``env`` adds environment variables."""
    started = time.monotonic()
    done = subprocess.run(
        [*prefix, python, "-m", command, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
        env=dict(os.environ, PYTHONPATH=str(ROOT), **(env or {})),
        stdin=subprocess.DEVNULL,
    )
    return Run(done.returncode, done.stdout, done.stderr, time.monotonic() - started)


def server_args(server: object, *more: str) -> list[str]:
    return ["-H", server.host, "-p", str(server.port), *more]  # type: ignore[attr-defined]


def need(problem: str) -> NoReturn:
    """Skip a test whose Debian package is missing here, but fail it in CI, which must prove it."""
    import pytest

    if os.environ.get("CI"):
        pytest.fail(f"{problem}; CI must run this test", pytrace=False)
    pytest.skip(problem)


def secret_pieces_in_base64(output: str, secret: str) -> list[str]:
    """Base64 words of the output that decode (at any alignment) to 4 or more
    consecutive bytes of the secret: not even part of it may be readable."""
    raw = secret.encode()
    pieces = {raw[i : i + 4] for i in range(len(raw) - 3)}
    found = []
    for word in re.findall(r"[A-Za-z0-9+/]{4,}=*", output):
        for start in range(4):
            chunk = word[start:].rstrip("=")
            chunk = chunk[: len(chunk) - len(chunk) % 4]
            try:
                decoded = base64.b64decode(chunk)
            except ValueError:
                continue
            if any(piece in decoded for piece in pieces):
                found.append(word)
    return found
