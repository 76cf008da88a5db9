"""Bad command lines, the same way in both commands.

argparse prints its usage and exits 2 on a bad option; a plugin must say one line
and exit UNKNOWN (3), and the notifier one line on stderr.  Both parsers raise
UsageError instead, and each command decides how to show it.
"""

from __future__ import annotations

import argparse
from typing import NoReturn


class UsageError(Exception):
    """A bad option value; its message is the one line the user sees."""


class Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(message)
