"""Every check run is a new process and pays for every module it imports.

The floor of a Python plugin is ``import nagiosplugin``; a plain check may add argparse
(with gettext, which argparse imports), ``select`` and its own modules, nothing else.
The project frames SMTP itself (core/client.py), so smtplib and what it drags in
(``email``, ``ssl``, ``hmac``, ``hashlib``, ``urllib``) are not loaded by a plaintext
walk; heavy modules (dnspython, the IDNA codec, asyncio, json, ...) belong on the
paths that use them.  What these imports cost is measured by the benchmarks (python3 -m
tests.bench); this only pins down *which* modules a run loads, which is exact.
"""

from __future__ import annotations

import subprocess
import sys

from tests.plugin import ROOT, server_args

# The package's __init__ is empty; importing it adds only what an editable install's
# import hook loads (pathlib, urllib.parse), which a real installation does not have.
FLOOR = "import nagiosplugin, check_smtp_verbs"
NEVER_FOR_PLAINTEXT = ("smtplib", "email", "ssl", "_ssl", "hmac", "hashlib", "dns", "urllib")
# typing: the plugin's records are typing.NamedTuples. Whether the floor already has it
# depends on the installation (a .pth hook such as certifi's imports it; a clean venv
# does not), so it is allowed rather than counted.
# argparse with gettext (and the locale it asks), the C socket module and select: the
# least any network check needs (not the Python socket module: see core/deadline.py).
ALLOWED_BEYOND_THE_FLOOR = {
    "argparse",
    "gettext",
    "locale",
    "_locale",
    "_socket",
    "select",
    "typing",
    "_typing",
    "typing.io",
    "typing.re",
}
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


def test_a_plaintext_walk_to_rcpt_loads_no_smtplib_email_ssl_hmac_hashlib_or_dns(smtp_server):
    server = smtp_server()
    args = server_args(server, "-f", "probe@example.net", "--rcpt", "postmaster@example.net")
    loaded = loaded_modules(f"from {PACKAGE}.cli import main\nmain()", *args)
    assert f"{PACKAGE}.probe" in loaded, "the plugin did not run"
    beyond = loaded - loaded_modules(FLOOR)
    assert {m for m in beyond if m.partition(".")[0] in NEVER_FOR_PLAINTEXT} == set()


def test_only_the_console_scripts_turn_the_collector_off():
    # A program that imports the package keeps its garbage collector; the console
    # scripts (check_smtp_verbs.entry) turn it off for their own short lives.
    code = (
        "import gc, check_smtp_verbs.cli, check_smtp_verbs.notify.cli; a = gc.isenabled(); "
        "import check_smtp_verbs.entry; print(a, gc.isenabled())"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=30, cwd=ROOT
    )
    assert done.stdout.split() == ["True", "False"]


def test_the_console_script_flushes_its_output_into_a_file_before_it_leaves(smtp_server, tmp_path):
    server = smtp_server()
    out = tmp_path / "out.txt"
    with out.open("w") as stdout:
        done = subprocess.run(
            [sys.executable, "-m", PACKAGE, *server_args(server), "-v"],
            stdout=stdout,
            cwd=ROOT,
            timeout=30,
        )
    assert done.returncode == 0
    lines = out.read_text().splitlines()
    assert lines[0].startswith("SMTP_VERBS OK")
    assert "total" in lines[-2]  # the -v lines came out too, all of them
