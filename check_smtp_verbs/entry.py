"""The console scripts: a plugin process that starts lean and ends the moment it is done.

A scheduler starts one process per check, thousands an hour, and each one pays
twice for being Python beyond its own work: the cyclic garbage collector runs over
every object the imports create (they create many and free none), and at exit the
interpreter tears down every module and runs the collector once more, for a process
whose memory the kernel is about to take back anyway.  Measured against
``python -c "import nagiosplugin"`` (docs/benchmarks.md), that teardown was the
largest single cost a check added.  So the console scripts — and only they, never
a program that imports the package — turn the collector off before anything else is
imported and, once the output is written and flushed, leave with ``os._exit``.

Nothing is lost by it: the check writes nothing but its output; the notifier has
written, fsynced and renamed its state file and released its locks before it
returns; nagiosplugin's log handler writes to memory.
"""

from __future__ import annotations

import gc

gc.disable()  # first: every import below would otherwise feed the collector

from typing import Callable, NoReturn  # noqa: E402  (after gc.disable() on purpose)


def check() -> NoReturn:
    """``check_smtp_verbs``."""
    from check_smtp_verbs.cli import main

    _run(main)


def notify() -> NoReturn:
    """``notify_sms_mail``."""
    from check_smtp_verbs.notify.cli import main

    _run(main)


def _run(main: Callable[[], object]) -> NoReturn:
    try:
        code = main()
    except SystemExit as done:
        code = done.code
    _leave(code)


def _leave(code: object) -> NoReturn:
    """Exit with ``code`` as sys.exit() would, without the interpreter's teardown."""
    import os
    import sys

    if code is None:
        status = 0
    elif isinstance(code, int):
        status = code
    else:  # sys.exit("message") prints the message and exits 1
        print(code, file=sys.stderr)
        status = 1
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe: nothing more can be said
            if stream is sys.stdout and status == 0:
                status = 1
    os._exit(status & 0xFF)
