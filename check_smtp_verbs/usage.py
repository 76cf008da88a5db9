"""Bad command lines, the same way in both commands.

argparse prints its usage and exits 2 on a bad option; a plugin must say one line
and exit UNKNOWN (3), and the notifier one line on stderr.  Both parsers raise
UsageError instead, and each command decides how to show it.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import Any, NoReturn


class UsageError(Exception):
    """A bad option value; its message is the one line the user sees."""


class Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(message)

    def parse_known_args(  # type: ignore[override]
        self, args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None
    ) -> tuple[argparse.Namespace, list[str]]:
        """argparse, with repeatable options taken out first.

        argparse looks for the next option with a scan over every option position
        (CPython's ``_parse_known_args``), so 20 000 ``--rcpt`` took 13 s.  Repeatable
        (append) options given in full are collected here in one pass, in order, and
        argparse sees only the rest; anything unusual (an abbreviation, a missing
        value, a value that looks like an option) is left to argparse as before.
        """
        import sys

        argv = list(sys.argv[1:] if args is None else args)
        rest, collected = self._take_appends(argv)
        parsed, extras = super().parse_known_args(rest, namespace)
        for dest, values in collected.items():
            already = getattr(parsed, dest, None) or []
            setattr(parsed, dest, [*values, *already])
        return parsed, extras

    def _take_appends(self, argv: list[str]) -> tuple[list[str], dict[str, list[Any]]]:
        appends: dict[str, argparse.Action] = {}
        takes_value: set[str] = set()
        optional_value: set[str] = set()
        for action in self._actions:
            for option in action.option_strings:
                if isinstance(action, argparse._AppendAction):
                    appends[option] = action
                elif action.nargs == "?":
                    optional_value.add(option)
                elif action.nargs is None:
                    takes_value.add(option)
        if not appends:
            return argv, {}
        rest: list[str] = []
        collected: dict[str, list[Any]] = {}
        index = 0
        while index < len(argv):
            arg = argv[index]
            if arg == "--":
                rest += argv[index:]
                break
            name, eq, attached = arg.partition("=")
            action = appends.get(name if name.startswith("--") else arg)
            if action is not None and eq and name.startswith("--"):
                value: str | None = attached
                used = 1
            elif action is not None and index + 1 < len(argv):
                value = argv[index + 1]
                used = 2
                if value.startswith("-") and value != "-":
                    value = None  # argparse decides what "--rcpt -x" means
            else:
                value = None
            if action is None or value is None:
                rest.append(arg)
                index += 1
                if (
                    not eq
                    and index < len(argv)
                    and (
                        arg in takes_value
                        or (arg in optional_value and not argv[index].startswith("-"))
                    )
                ):
                    rest.append(argv[index])
                    index += 1
                continue
            converted = self._get_value(action, value)  # type conversion, errors as argparse
            collected.setdefault(action.dest, []).append(converted)
            index += used
        return rest, collected
