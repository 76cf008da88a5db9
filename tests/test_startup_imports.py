"""Every check run is a new process and pays for every module it imports.

The floor of a Python plugin is ``import nagiosplugin, smtplib``; a plain check may add
argparse (with gettext, which argparse imports) and its own modules, nothing else.
Heavy modules (dnspython, the IDNA codec, asyncio, json, ...) belong on the paths that
use them.  What these imports cost is measured by the benchmarks (python3 -m
tests.bench); this only pins down *which* modules a run loads, which is exact.
"""

from __future__ import annotations

import subprocess
import sys

from tests.plugin import ROOT, server_args

FLOOR = "import nagiosplugin, smtplib"
# typing: the plugin's records are typing.NamedTuples. Whether the floor already has it
# depends on the installation (a .pth hook such as certifi's imports it; a clean venv
# does not), so it is allowed rather than counted.
ALLOWED_BEYOND_THE_FLOOR = {"argparse", "gettext", "typing", "_typing", "typing.io", "typing.re"}
PACKAGE = "check_smtp_verbs"

# Print sys.modules as the interpreter exits, after the plugin's sys.exit().
_REPORT = (
    "import atexit, sys\n"
    "atexit.register(lambda: sys.stderr.write('\\n'.join(sorted(sys.modules)) + '\\n'))\n"
)


def loaded_modules(code: str, *args: str) -> set[str]:
    done = subprocess.run(
        [sys.executable, "-c", _REPORT + code, *args],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=ROOT,
        stdin=subprocess.DEVNULL,
    )
    return set(done.stderr.split())


def beyond_the_floor(*args: str) -> set[str]:
    check = loaded_modules(f"from {PACKAGE}.cli import main\nmain()", *args)
    assert f"{PACKAGE}.cli" in check, "the plugin did not run"
    return {
        name
        for name in check - loaded_modules(FLOOR)
        if name not in ALLOWED_BEYOND_THE_FLOOR and name.partition(".")[0] != PACKAGE
    }


def test_a_whole_check_loads_nothing_beyond_the_floor_but_argparse_and_its_own_modules(
    smtp_server,
):
    server = smtp_server()
    args = server_args(server, "-f", "probe@example.net", "--rcpt", "postmaster@example.net")
    assert beyond_the_floor(*args) == set()
    assert server.received[-1] == "QUIT"


def test_help_and_option_errors_load_nothing_heavy_either():
    assert beyond_the_floor("--help") == set()
    assert beyond_the_floor("-H", "127.0.0.1", "-p", "99999") == set()
