"""Where a check's CPU time goes beyond the floor, phase by phase, inside one process.

Run as a child (``python phases.py -H … -p … …``), it does what the console script
does, in the same order, and prints the CPU time of each phase (``time.process_time``,
so a neighbour's load does not count) as ``name=milliseconds`` on stderr.  The parent
takes medians over several runs; ``-S`` runs show what the site hooks of an
interpreter had already paid for (``typing``, on machines whose .pth files import it).
"""

from __future__ import annotations

import contextlib
import io
import sys
import time

PHASES = (
    ("floor", "import nagiosplugin"),
    ("typing", "import typing (if site has not already)"),
    ("argparse", "import argparse (and gettext)"),
    ("options", "import cli, settings, addresses, codes"),
    ("parse", "build the parser, parse and validate"),
    (
        "walk modules",
        "import probe, conversation, core (client, deadline, transcript), contexts, resource, "
        "summary",
    ),
    ("run", "Check.main(): the walk, judging, output"),
)


def main() -> None:
    marks = [time.process_time()]
    import nagiosplugin  # noqa: F401

    marks.append(time.process_time())
    import typing  # noqa: F401

    marks.append(time.process_time())
    import argparse  # noqa: F401

    marks.append(time.process_time())
    from check_smtp_verbs import cli

    marks.append(time.process_time())
    settings = cli.settings_from(sys.argv[1:])
    marks.append(time.process_time())
    from check_smtp_verbs import contexts, probe, resource, summary  # noqa: F401

    marks.append(time.process_time())
    check = cli.build_check(settings)
    with contextlib.suppress(SystemExit), contextlib.redirect_stdout(io.StringIO()):
        check.main(verbose=0, timeout=12)
    marks.append(time.process_time())
    print(
        " ".join(
            f"{i}={(after - before) * 1000:.3f}"
            for i, (before, after) in enumerate(zip(marks, marks[1:]))
        ),
        file=sys.stderr,
    )


if __name__ == "__main__":
    main()
