"""What one whole process costs: wall time, CPU time (user + system) and peak RSS.

The numbers come from ``wait4()`` in a tiny launcher (``launch.c``), not from this
Python process: Linux reports as a child's peak RSS the larger of its own and the
peak of the process that exec'd it, so a child spawned straight from the benchmark
(tens of MiB, a test server thread, Postfix bookkeeping) would inherit our size.  The
launcher is compiled once per run with the system C compiler; without one, a Python
launcher started with ``-S`` stands in, and every RSS reading below its own peak
(about 8 MiB) reads as that peak, which the table header then says.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import NamedTuple

HERE = Path(__file__).resolve().parent

_PY_LAUNCHER = """\
import os, sys, time
start = time.monotonic_ns()
pid = os.posix_spawnp(sys.argv[2], sys.argv[2:], os.environ)
_, status, usage = os.wait4(pid, 0)
wall = time.monotonic_ns() - start
code = os.waitstatus_to_exitcode(status)
with open(sys.argv[1], "w") as out:
    out.write(f"{wall} {round(usage.ru_utime * 1e6)} {round(usage.ru_stime * 1e6)} "
              f"{usage.ru_maxrss} {code if code >= 0 else 128 - code}\\n")
"""


class Cost(NamedTuple):
    wall: float  # seconds
    cpu: float  # seconds, user + system, of the child alone
    rss: int  # peak resident set, KiB
    status: int  # exit code (128 + signal when killed)
    stdout: str


class Launcher:
    """Runs commands through the launcher and reads back what each one cost."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.result = workdir / "cost"
        self.out = workdir / "stdout"
        compiler = shutil.which("cc") or shutil.which("gcc")
        binary = workdir / "launch"
        self.kind = "C (wait4)"
        if compiler is not None:
            built = subprocess.run(
                [compiler, "-O2", "-o", str(binary), str(HERE / "launch.c")],
                capture_output=True,
                text=True,
            )
            if built.returncode == 0:
                self.prefix = [str(binary)]
            else:
                compiler = None
        if compiler is None:
            script = workdir / "launch.py"
            script.write_text(_PY_LAUNCHER)
            self.prefix = [sys.executable, "-S", "-E", "-s", str(script)]
            self.kind = "Python -S (wait4); no C compiler"
        # The launcher's own peak: the smallest RSS it can report for anything.
        self.rss_floor = self.run(["true"]).rss

    def run(self, argv: list[str], env: dict[str, str] | None = None, timeout: float = 60) -> Cost:
        with open(self.out, "wb") as out:
            done = subprocess.run(
                [*self.prefix, str(self.result), *argv],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
                timeout=timeout,
                cwd=self.workdir,  # not the checkout: ``-c`` would import the package from it
            )
        if done.returncode != 0:
            raise RuntimeError(f"launcher failed ({done.returncode}) for {argv}")
        wall_ns, user_us, sys_us, rss, status = (int(x) for x in self.result.read_text().split())
        return Cost(
            wall_ns / 1e9,
            (user_us + sys_us) / 1e6,
            rss,
            status,
            self.out.read_text(errors="replace"),
        )


def make_workdir() -> Path:
    return Path(tempfile.mkdtemp(prefix="check-smtp-verbs-bench-"))


def remove_workdir(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)


def load() -> str:
    """The load averages now, for the table header: a loaded machine skews every ratio."""
    one, five, fifteen = os.getloadavg()
    return f"load {one:.2f} {five:.2f} {fifteen:.2f} on {os.cpu_count()} CPUs"
