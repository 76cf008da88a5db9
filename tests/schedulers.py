"""Private Icinga 2 and Nagios 4 instances that load the shipped contrib/ definitions.

Definitions that the real program never loaded are guesses, so the tests
validate contrib/ with ``icinga2 daemon -C`` and ``nagios4 -v`` and run both
schedulers end to end.  Everything an instance writes lives in one temporary
directory: Icinga 2 gets every directory constant on its command line, Nagios
gets every path in its own main config.  Neither touches /etc/icinga2,
/var/lib/nagios4 or any other system directory.

The plugins are not installed: :func:`write_wrappers` writes one small
executable per console script of setup.cfg into a temporary "plugin
directory", importing the package from this checkout.  They are what pip's
console scripts are, plus a log line per run (program, arguments, exit code),
which is the event the tests wait on.  The schedulers' ``PluginDir`` and
``$USER1$`` point at that directory, so the shipped definitions are loaded
unchanged.
"""

from __future__ import annotations

import configparser
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

from tests.postfix import _wait_gone, processes_with_environment

T = TypeVar("T")

ROOT = Path(__file__).resolve().parent.parent
CONTRIB = ROOT / "contrib"
# Nagios settings for end-to-end tests: every check and its result within a second or two,
# and no host checks to wait for.
FAST_SCHEDULING: dict[str, str | int] = {
    "interval_length": 1,
    "check_result_reaper_frequency": 1,
    "max_check_result_reaper_time": 1,
    "service_inter_check_delay_method": "n",
    "max_service_check_spread": 1,
    "execute_host_checks": 0,
}
SEARCH_PATH = os.pathsep.join([os.environ.get("PATH", os.defpath), "/usr/sbin", "/usr/local/sbin"])
MARKER = "CHECK_SMTP_VERBS_TEST_INSTANCE"
"""Exported to a scheduler and so to every process it starts: how teardown finds
stragglers that left the process group."""


def find_program(name: str) -> str | None:
    return shutil.which(name, path=SEARCH_PATH)


def console_scripts() -> dict[str, str]:
    """``name -> module:function`` from setup.cfg, as pip would install them."""
    config = configparser.ConfigParser()
    config.read(ROOT / "setup.cfg")
    scripts = {}
    for line in config["options.entry_points"]["console_scripts"].strip().splitlines():
        name, _, target = line.partition("=")
        scripts[name.strip()] = target.strip()
    return scripts


_WRAPPER = """\
#!{python}
# Written by tests/schedulers.py: the console script {name!r}, run from the checkout.
# The run is recorded however the program ends: sys.exit(), or os._exit() after its
# output is flushed (the console scripts leave that way, see check_smtp_verbs/entry.py).
import json, os, sys
sys.path.insert(0, {root!r})


def record(code):
    entry = {{"program": {name!r}, "argv": sys.argv[1:], "exit": code}}
    entry["env"] = {{k: v for k, v in os.environ.items() if k.startswith("NAGIOS_")}}
    with open({log!r}, "a", encoding="utf-8") as log:
        log.write(json.dumps(entry) + "\\n")


real_exit = os._exit


def record_and_exit(status):
    record(status)
    real_exit(status)


os._exit = record_and_exit
code = 0
try:
    from {module} import {function}
    result = {function}()
    code = result if isinstance(result, int) else 0
except SystemExit as done:
    code = done.code if isinstance(done.code, int) else (0 if done.code is None else 1)
record(code)
sys.exit(code)
"""


def write_wrappers(bin_dir: Path, log: Path) -> dict[str, Path]:
    """One executable per console script in ``bin_dir``; each run appends a JSON line to ``log``."""
    bin_dir.mkdir(parents=True, exist_ok=True)
    written = {}
    for name, target in console_scripts().items():
        module, _, function = target.partition(":")
        path = bin_dir / name
        path.write_text(
            _WRAPPER.format(
                python=sys.executable,
                name=name,
                root=str(ROOT),
                module=module,
                function=function,
                log=str(log),
            )
        )
        path.chmod(0o755)
        written[name] = path
    return written


def runs(log: Path, program: str | None = None) -> list[dict[str, Any]]:
    """Completed runs recorded by the wrappers, oldest first."""
    try:
        lines = log.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        return []
    found = [json.loads(line) for line in lines if line.endswith("}")]
    return [run for run in found if program is None or run["program"] == program]


def poll(probe: Callable[[], T | None], timeout: float, what: str, explain: Callable[[], str]) -> T:
    """Retry ``probe`` until it returns something truthy, for at most ``timeout`` seconds.

    Only for facts that another process produces (a log line, a mail at the
    test gateway): there is nothing to block on, so this looks every 50 ms and
    gives up at the deadline with ``explain()`` (the scheduler's log) in the message.
    """
    deadline = time.monotonic() + timeout
    while True:
        found = probe()
        if found:
            return found
        if time.monotonic() >= deadline:
            raise AssertionError(f"gave up after {timeout}s waiting for {what}\n{explain()}")
        time.sleep(0.05)


def session_processes(marker: str) -> list[int]:
    """Live processes that carry ``MARKER=marker`` in their environment."""
    return processes_with_environment(f"{MARKER}={marker}")


def as_localhost(command: list[str]) -> list[str]:
    """Run ``command`` in its own UTS namespace whose host name is ``localhost``.

    Icinga 2 looks up its own FQDN at start-up, and a notifier may too (for a
    Message-ID): with the host name ``localhost`` that is answered by
    /etc/hosts on any machine, never by the system resolver, which the tests
    must not use.  Without unshare(1) the command runs as it is.
    """
    unshare = find_program("unshare")
    if unshare is None or os.geteuid() != 0:
        return command
    return [
        unshare,
        "--uts",
        "--",
        "/bin/sh",
        "-c",
        'hostname localhost && exec "$@"',
        "sh",
        *command,
    ]


class Scheduler:
    """A daemon started in its own session, stopped with its whole process group."""

    name = "scheduler"

    def __init__(self, base_dir: Path) -> None:
        self.base_dir = base_dir
        self.bin_dir = base_dir / "plugins"
        self.run_log = base_dir / "plugin-runs.jsonl"
        self.output = base_dir / f"{self.name}.out"
        self.process: subprocess.Popen[bytes] | None = None
        write_wrappers(self.bin_dir, self.run_log)

    def command(self, validate: bool) -> list[str]:
        raise NotImplementedError

    def environment(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("NAGIOS_", "ICINGA"))}
        env[MARKER] = str(self.base_dir)
        return env

    def log_text(self) -> str:
        """What the scheduler said, for assertion messages."""
        with contextlib.suppress(FileNotFoundError):
            return self.output.read_text(errors="replace")[-6000:]
        return ""

    def validate(self) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            as_localhost(self.command(validate=True)),
            capture_output=True,
            text=True,
            timeout=60,
            env=self.environment(),
            stdin=subprocess.DEVNULL,
            cwd=self.base_dir,
        )

    def start(self) -> None:
        with open(self.output, "wb") as out:
            self.process = subprocess.Popen(
                as_localhost(self.command(validate=False)),
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=self.environment(),
                cwd=self.base_dir,
                start_new_session=True,
            )

    def stop(self) -> list[int]:
        """Stop the daemon and everything it started; returns processes that survived."""
        process, self.process = self.process, None
        if process is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=10)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)
        # Members of the group may take a moment to die; whatever is alive
        # after that (or escaped the group) was left behind.
        survivors = _wait_gone(session_processes(str(self.base_dir)), timeout=5)
        for pid in survivors:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        _wait_gone(survivors, timeout=5)
        return survivors

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def runs(self, program: str | None = None) -> list[dict[str, Any]]:
        return runs(self.run_log, program)

    def wait_for(self, probe: Callable[[], T | None], what: str, timeout: float = 20) -> T:
        def checked() -> T | None:
            if not self.running():
                raise AssertionError(f"{self.name} exited early\n{self.log_text()}")
            return probe()

        return poll(checked, timeout, what, self.log_text)

    def __enter__(self) -> Scheduler:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


class Icinga2(Scheduler):
    """``icinga2 daemon`` on a main config in ``base_dir`` (write it to :attr:`config`)."""

    name = "icinga2"
    DIRS = ("data", "log", "cache", "spool", "run")

    def __init__(self, base_dir: Path, program: str) -> None:
        super().__init__(base_dir)
        self.program = program
        self.config = base_dir / "icinga2.conf"
        for sub in self.DIRS:
            (base_dir / sub).mkdir(exist_ok=True)

    def command(self, validate: bool) -> list[str]:
        defines = {
            "DataDir": "data",
            "LogDir": "log",
            "CacheDir": "cache",
            "SpoolDir": "spool",
            "InitRunDir": "run",
        }
        args = [self.program, "daemon", *(["-C"] if validate else []), "-c", str(self.config)]
        for constant, sub in defines.items():
            args += ["-D", f"{constant}={self.base_dir / sub}"]
        return args

    def environment(self) -> dict[str, str]:
        return super().environment() | {"ICINGA2_USER": "root", "ICINGA2_GROUP": "root"}

    def objects(self) -> list[dict[str, Any]]:
        """The objects as Icinga 2 compiled them (``daemon -C`` writes them to
        CacheDir/icinga2.debug as netstrings of JSON)."""
        data = (self.base_dir / "cache" / "icinga2.debug").read_bytes()
        found, index = [], 0
        while index < len(data):
            colon = data.index(b":", index)
            size = int(data[index:colon])
            found.append(json.loads(data[colon + 1 : colon + 1 + size]))
            index = colon + 1 + size + 1  # the trailing ","
        return found

    def object(self, kind: str, name: str) -> dict[str, Any]:
        for item in self.objects():
            if item["type"] == kind and item["properties"]["__name"] == name:
                return item["properties"]
        raise AssertionError(f"Icinga 2 did not create {kind} {name!r}")


def icinga2_config(plugin_dir: Path, *includes: Path, body: str = "") -> str:
    """A main config: the ITL and plugin commands, PluginDir, ``includes``, ``body``."""
    lines = [
        "include <itl>",
        "include <plugins>",
        f"const PluginDir = {json.dumps(str(plugin_dir))}",
        body,
        *(f"include {json.dumps(str(path))}" for path in includes),
    ]
    return "\n".join(lines) + "\n"


NAGIOS_TIMEPERIOD = """\
define timeperiod {
    timeperiod_name 24x7
    alias           always
    sunday          00:00-24:00
    monday          00:00-24:00
    tuesday         00:00-24:00
    wednesday       00:00-24:00
    thursday        00:00-24:00
    friday          00:00-24:00
    saturday        00:00-24:00
}
"""


class Nagios(Scheduler):
    """``nagios4`` on a private main config: every path it writes is under ``base_dir``."""

    name = "nagios"

    def __init__(self, base_dir: Path, program: str) -> None:
        super().__init__(base_dir)
        self.program = program
        self.config = base_dir / "nagios.cfg"
        self.var = base_dir / "var"
        (self.var / "checkresults").mkdir(parents=True, exist_ok=True)
        self.log_file = self.var / "nagios.log"

    def command(self, validate: bool) -> list[str]:
        return [self.program, *(["-v"] if validate else []), str(self.config)]

    def log_text(self) -> str:
        text = super().log_text()
        with contextlib.suppress(FileNotFoundError):
            text += "\n--- nagios.log ---\n" + self.log_file.read_text(errors="replace")[-6000:]
        return text

    def write_config(self, cfg_files: list[Path], **settings: str | int) -> None:
        """The main config with every path private; ``settings`` add or override."""
        var = self.var
        resource = self.base_dir / "resource.cfg"
        resource.write_text(f"$USER1$={self.bin_dir}\n")
        main: dict[str, str | int] = {
            "log_file": var / "nagios.log",
            "object_cache_file": var / "objects.cache",
            "precached_object_file": var / "objects.precache",
            "resource_file": resource,
            "status_file": var / "status.dat",
            "temp_file": var / "nagios.tmp",
            "temp_path": var,
            "lock_file": var / "nagios.lock",
            "check_result_path": var / "checkresults",
            "command_file": var / "nagios.cmd",
            "query_socket": var / "nagios.qh",
            "state_retention_file": var / "retention.dat",
            "debug_file": var / "nagios.debug",
            "log_archive_path": var,
            "retain_state_information": 0,
            "use_syslog": 0,
            "check_external_commands": 0,
            "nagios_user": "root",
            "nagios_group": "root",
            "illegal_object_name_chars": "`~!$%^&*|'\"<>?,()=",
            # Debian's value: what the definitions must survive.
            "illegal_macro_output_chars": "`~$&|'\"<>",
        } | {key: str(value) for key, value in settings.items()}
        lines = [f"cfg_file={path}" for path in cfg_files]
        lines += [f"{key}={value}" for key, value in main.items()]
        self.config.write_text("\n".join(lines) + "\n")


@contextlib.contextmanager
def running(scheduler: Scheduler) -> Iterator[Scheduler]:
    """Run ``scheduler``; on the way out stop it and fail if any process survived."""
    scheduler.start()
    try:
        yield scheduler
    finally:
        stragglers = scheduler.stop()
    assert not stragglers, f"{scheduler.name} left processes behind: {stragglers}"
