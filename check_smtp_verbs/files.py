"""Replacing a state file so that no reader, and no crash, ever sees half of it.

Both programs keep state between runs (the notifier's throttle, the round trip's
pending probes).  Rewriting a file in place (truncate, then write) leaves a
truncated file when the process dies half-way; this writes a temporary file beside
it, fsyncs it, renames it over the old one and fsyncs the directory, so a reader
finds the old state or the new one and the rename survives a power cut.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path


def replace_atomically(path: Path, data: bytes) -> None:
    """Make ``data`` the content of ``path``; OSError when it cannot be done (nothing is
    left behind then: the temporary file is removed)."""
    fd, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise
    directory = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(directory)  # the rename itself survives a power cut
    finally:
        os.close(directory)
